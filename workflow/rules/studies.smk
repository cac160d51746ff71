# The two studies: anti-noise co-learning (paper 5.3, Fig. 11) and LIF+ neurons (paper 5.4, Table 4).


rule colearn_finetune:
    input:
        model=lambda w: f"{RESULTS}/experiments/{COLEARN_EXPERIMENT}/model.pt",
        train=lambda w: experiment_split(COLEARN_EXPERIMENT, "train"),
        val=lambda w: experiment_split(COLEARN_EXPERIMENT, "test"),
        raw=lambda w: experiment_raw(COLEARN_EXPERIMENT),
        bptt=lambda w: colearn_input_bptt(w.method),
    output:
        model=f"{RESULTS}/colearning/{{method}}/model.pt",
        history=f"{RESULTS}/colearning/{{method}}/history.csv",
    wildcard_constraints:
        method=r"(bptt|rstdp)(\.[A-Za-z0-9_]+)?",  # <method>.<variant>: a named variant, on request
    params:
        method=lambda w: w.method.partition(".")[0],
        study=lambda w: colearn_study(w.method),
        experiment=lambda w: experiment(COLEARN_EXPERIMENT),
        seed=config["seed"],
        device=config.get("device", "auto"),
    log:
        f"{LOGS}/colearning/{{method}}.log",
    benchmark:
        f"benchmarks/{PRESET}/colearning/{{method}}.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/colearn.py"


rule colearn_noise:
    input:
        model=lambda w: f"{RESULTS}/experiments/{COLEARN_EXPERIMENT}/model.pt",
        bptt=f"{RESULTS}/colearning/bptt/model.pt",
        rstdp=f"{RESULTS}/colearning/rstdp/model.pt",
        val=lambda w: experiment_split(COLEARN_EXPERIMENT, "test"),
        raw=lambda w: experiment_raw(COLEARN_EXPERIMENT),
    output:
        csv=f"{RESULTS}/figures/fig11.csv",
    params:
        study=COLEARN,
        experiment=lambda w: experiment(COLEARN_EXPERIMENT),
        data_source=lambda w: describe_dataset_source(experiment(COLEARN_EXPERIMENT)["dataset"]),
        preset=PRESET,
    log:
        f"{LOGS}/colearning/noise.log",
    benchmark:
        f"benchmarks/{PRESET}/colearning/noise.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/colearn_noise.py"


rule fig11:
    input:
        csv=rules.colearn_noise.output.csv,
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
        model=f"{RESULTS}/lifplus/{{variant}}/model.pt",
        history=f"{RESULTS}/lifplus/{{variant}}/history.csv",
    params:
        name=lambda w: f"lifplus_{w.variant}",
        experiment=lambda w: lifplus_experiment(w.variant),
        loader=lambda w: experiment_loader(LIFPLUS_EXPERIMENT),
        # trained as the study's experiment is: with its dataset's training augmentation
        augment=lambda w: config["datasets"][experiment(LIFPLUS_EXPERIMENT)["dataset"]].get("augment"),
        seed=config["seed"],
        device=config.get("device", "auto"),
        deterministic=config.get("deterministic", True),
        distributed=DISTRIBUTED,
    log:
        f"{LOGS}/lifplus/train_{{variant}}.log",
    benchmark:
        f"benchmarks/{PRESET}/lifplus/{{variant}}.tsv"
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
        metrics=f"{RESULTS}/lifplus/{{variant}}/metrics.json",
    params:
        name=lambda w: f"lifplus_{w.variant}",
        experiment=lambda w: lifplus_experiment(w.variant),
        loader=lambda w: experiment_loader(LIFPLUS_EXPERIMENT),
        timestep_hz=lambda w: experiment_timestep_hz(LIFPLUS_EXPERIMENT),
        seed=config["seed"],
    log:
        f"{LOGS}/lifplus/evaluate_{{variant}}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/evaluate.py"


rule table4:
    input:
        metrics=expand(f"{RESULTS}/lifplus/{{variant}}/metrics.json", variant=LIFPLUS_VARIANTS),
        lif=lambda w: f"{RESULTS}/experiments/{LIFPLUS_EXPERIMENT}/metrics.json",
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
