# The two studies: anti-noise co-learning (paper 5.3, Fig. 11) and LIF+ neurons (paper 5.4, Table 4).


rule colearn_finetune:
    input:
        model=lambda w: run_file(COLEARN_EXPERIMENT, w.seed, "model.pt"),
        train=lambda w: experiment_split(COLEARN_EXPERIMENT, "train"),
        val=lambda w: experiment_split(COLEARN_EXPERIMENT, "test"),
        raw=lambda w: experiment_raw(COLEARN_EXPERIMENT),
        bptt=lambda w: colearn_input_bptt(w.method, w.seed),
    output:
        model=f"{RESULTS}/colearning/{{method}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/colearning/{{method}}/seed{{seed}}/history.csv",
    wildcard_constraints:
        method=r"(bptt|rstdp)(\.[A-Za-z0-9_]+)?",  # <method>.<variant>: a named variant, on request
    params:
        method=lambda w: w.method.partition(".")[0],
        study=lambda w: colearn_study(w.method),
        experiment=lambda w: experiment(COLEARN_EXPERIMENT),
        seed=lambda w: int(w.seed),
        device=config.get("device", "auto"),
    log:
        f"{LOGS}/colearning/{{method}}/seed{{seed}}.log",
    benchmark:
        f"benchmarks/{PRESET}/colearning/{{method}}/seed{{seed}}.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/colearn.py"


rule colearn_noise:
    input:
        model=lambda w: run_file(COLEARN_EXPERIMENT, w.seed, "model.pt"),
        bptt=f"{RESULTS}/colearning/bptt/seed{{seed}}/model.pt",
        rstdp=f"{RESULTS}/colearning/rstdp/seed{{seed}}/model.pt",
        val=lambda w: experiment_split(COLEARN_EXPERIMENT, "test"),
        raw=lambda w: experiment_raw(COLEARN_EXPERIMENT),
    output:
        csv=f"{RESULTS}/colearning/noise/seed{{seed}}.csv",
    params:
        study=COLEARN,
        experiment=lambda w: experiment(COLEARN_EXPERIMENT),
        data_source=lambda w: describe_dataset_source(experiment(COLEARN_EXPERIMENT)["dataset"]),
        preset=PRESET,
        seed=lambda w: int(w.seed),
    log:
        f"{LOGS}/colearning/noise/seed{{seed}}.log",
    benchmark:
        f"benchmarks/{PRESET}/colearning/noise/seed{{seed}}.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/colearn_noise.py"


# Figure 11's measurements over the seeds: per network and noise ratio the mean, sd and 95 % interval
rule fig11_data:
    input:
        csv=expand(f"{RESULTS}/colearning/noise/seed{{seed}}.csv", seed=SEEDS),
    output:
        csv=f"{RESULTS}/figures/fig11.csv",
    log:
        f"{LOGS}/render/fig11_data.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/fig11_data.py"


rule fig11:
    input:
        csv=rules.fig11_data.output.csv,
    output:
        figure=report(f"{RESULTS}/figures/fig11.png", caption="../report/fig11.rst", category="Figures"),
    log:
        f"{LOGS}/render/fig11.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_fig11.py"


rule lifplus_train:
    input:
        train=lambda w: experiment_split(LIFPLUS_EXPERIMENT, "train"),
        val=lambda w: experiment_split(LIFPLUS_EXPERIMENT, "test"),
        init=[],
        raw=lambda w: experiment_raw(LIFPLUS_EXPERIMENT),
    output:
        model=f"{RESULTS}/lifplus/{{variant}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/lifplus/{{variant}}/seed{{seed}}/history.csv",
    params:
        name=lambda w: f"lifplus_{w.variant}",
        experiment=lambda w: lifplus_experiment(w.variant),
        loader=lambda w: experiment_loader(LIFPLUS_EXPERIMENT),
        # trained as the study's experiment is: with its dataset's training augmentation
        augment=lambda w: config["datasets"][experiment(LIFPLUS_EXPERIMENT)["dataset"]].get("augment"),
        seed=lambda w: int(w.seed),
        device=config.get("device", "auto"),
        deterministic=config.get("deterministic", True),
        distributed=DISTRIBUTED,
    log:
        f"{LOGS}/lifplus/train_{{variant}}/seed{{seed}}.log",
    benchmark:
        f"benchmarks/{PRESET}/lifplus/{{variant}}/seed{{seed}}.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
        **TRAIN_RESOURCES,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/train.py"


rule lifplus_evaluate:
    input:
        model=rules.lifplus_train.output.model,
        test=lambda w: experiment_split(LIFPLUS_EXPERIMENT, "test"),
        raw=lambda w: experiment_raw(LIFPLUS_EXPERIMENT),
    output:
        metrics=f"{RESULTS}/lifplus/{{variant}}/seed{{seed}}/metrics.json",
    params:
        name=lambda w: f"lifplus_{w.variant}",
        experiment=lambda w: lifplus_experiment(w.variant),
        loader=lambda w: experiment_loader(LIFPLUS_EXPERIMENT),
        timestep_hz=lambda w: experiment_timestep_hz(LIFPLUS_EXPERIMENT),
        seed=lambda w: int(w.seed),
    log:
        f"{LOGS}/lifplus/evaluate_{{variant}}/seed{{seed}}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/evaluate.py"


rule table4:
    input:
        metrics=expand(
            f"{RESULTS}/lifplus/{{variant}}/seed{{seed}}/metrics.json", variant=LIFPLUS_VARIANTS, seed=SEEDS
        ),
        lif=lambda w: seeded_files([LIFPLUS_EXPERIMENT], "metrics.json"),
    output:
        markdown=report(f"{RESULTS}/tables/table4.md", caption="../report/table4.rst", category="Tables"),
        csv=f"{RESULTS}/tables/table4.csv",
        latex=f"{RESULTS}/tables/table4.tex",
    params:
        variants=lambda w: LIFPLUS["variants"] if LIFPLUS else {},
        data_source=lambda w: describe_dataset_source(experiment(LIFPLUS_EXPERIMENT)["dataset"]),
        preset=PRESET,
    log:
        f"{LOGS}/render/table4.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_table4.py"
