# Tables and figures rendered from the saved measurements only (no retraining, no re-measuring): every
# rendering rule reads JSON / CSV files and writes Markdown, CSV and LaTeX (tables) or PNG (figures).


rule table2:
    input:
        metrics=seeded_files(EXPERIMENTS, "metrics.json"),
        latency=expand(f"{RESULTS}/experiments/{{experiment}}/latency.json", experiment=EXPERIMENTS),
    output:
        markdown=report(f"{RESULTS}/tables/table2.md", caption="../report/table2.rst", category="Tables"),
        csv=f"{RESULTS}/tables/table2.csv",
        latex=f"{RESULTS}/tables/table2.tex",
    params:
        preset=PRESET,
        description=config.get("description", ""),
        # what the table quotes of each experiment: the paper's row, and how the preset scales and departs
        experiments={
            name: {k: v for k, v in experiment(name).items() if k in ("paper", "scaled", "departs")}
            for name in EXPERIMENTS
        },
        sources={
            dataset: describe_dataset_source(dataset)
            for dataset in sorted({experiment(name)["dataset"] for name in EXPERIMENTS})
        },
    log:
        f"{LOGS}/render/table2.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_table2.py"


rule table1:
    input:
        counts=rules.st_layers.output.counts,
    output:
        markdown=report(f"{RESULTS}/tables/table1.md", caption="../report/table1.rst", category="Tables"),
        csv=f"{RESULTS}/tables/table1.csv",
        latex=f"{RESULTS}/tables/table1.tex",
    params:
        preset=PRESET,
    log:
        f"{LOGS}/render/table1.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_table1.py"


rule fig4:
    input:
        csv=rules.st_layers.output.csv,
    output:
        figure=report(f"{RESULTS}/figures/fig4.png", caption="../report/fig4.rst", category="Figures"),
    log:
        f"{LOGS}/render/fig4.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_fig4.py"


rule cost_table:
    input:
        metrics=[run_file(name, REFERENCE_SEED, "metrics.json") for name in MODELS],  # the costed models
        cost=expand(f"{RESULTS}/experiments/{{experiment}}/cost.json", experiment=MODELS),
        latency=expand(f"{RESULTS}/experiments/{{experiment}}/latency.json", experiment=MODELS),
    output:
        markdown=report(f"{RESULTS}/tables/cost.md", caption="../report/cost.rst", category="Tables"),
        csv=f"{RESULTS}/tables/cost.csv",
        latex=f"{RESULTS}/tables/cost.tex",
    params:
        preset=PRESET,
        description=config.get("description", ""),
        compared={name: experiment(name).get("baseline_of") for name in MODELS},  # a baseline's experiment
        sources={name: describe_dataset_source(experiment(name)["dataset"]) for name in MODELS},
        energy=config.get("energy"),
    log:
        f"{LOGS}/render/cost.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_cost.py"


rule table3:
    input:
        metrics=seeded_files(TABLE3_MODELS, "metrics.json"),
        cost=expand(f"{RESULTS}/experiments/{{experiment}}/cost.json", experiment=TABLE3_MODELS),
    output:
        markdown=report(f"{RESULTS}/tables/table3.md", caption="../report/table3.rst", category="Tables"),
        csv=f"{RESULTS}/tables/table3.csv",
        latex=f"{RESULTS}/tables/table3.tex",
    params:
        preset=PRESET,
        description=config.get("description", ""),
        entries={name: experiment(name) for name in TABLE3_MODELS},
        sources={name: describe_dataset_source(experiment(name)["dataset"]) for name in TABLE3_MODELS},
        energy=config.get("energy"),
    log:
        f"{LOGS}/render/table3.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_table3.py"


rule fig_table3:
    input:
        csv=rules.table3.output.csv,
    output:
        figure=report(f"{RESULTS}/figures/table3.png", caption="../report/fig_table3.rst", category="Figures"),
    params:
        preset=PRESET,
    log:
        f"{LOGS}/render/fig_table3.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_table3.py"
