# Training (IIM, BPTT, resumable) and evaluation (IIM + EIM + time-shuffled control) per experiment.


rule train:
    input:
        train=lambda w: experiment_split(w.experiment, "train"),
        val=lambda w: experiment_split(w.experiment, "test"),
        init=lambda w: experiment_init(w.experiment, w.seed),
        raw=lambda w: experiment_raw(w.experiment),
    output:
        model=f"{RESULTS}/experiments/{{experiment}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/experiments/{{experiment}}/seed{{seed}}/history.csv",
    wildcard_constraints:
        seed=r"\d+",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        # the dataset's training augmentation (bidl.data.augment); evaluation never applies it
        augment=lambda w: config["datasets"][experiment(w.experiment)["dataset"]].get("augment"),
        seed=lambda w: int(w.seed),
        device=config.get("device", "auto"),
        deterministic=config.get("deterministic", True),
        distributed=DISTRIBUTED,
    log:
        f"{LOGS}/train/{{experiment}}/seed{{seed}}.log",
    benchmark:
        f"benchmarks/{PRESET}/train/{{experiment}}/seed{{seed}}.tsv"
    threads: THREADS
    resources:
        mem_mb=8000,
        **TRAIN_RESOURCES,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/train.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        test=lambda w: experiment_split(w.experiment, "test"),
        raw=lambda w: experiment_raw(w.experiment),
    output:
        metrics=f"{RESULTS}/experiments/{{experiment}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        seed=r"\d+",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        timestep_hz=lambda w: experiment_timestep_hz(w.experiment),
        seed=lambda w: int(w.seed),
    log:
        f"{LOGS}/evaluate/{{experiment}}/seed{{seed}}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/evaluate.py"


rule plot_history:
    input:
        history=lambda w: seeded_files([w.experiment], "history.csv"),
    output:
        figure=report(
            f"{RESULTS}/experiments/{{experiment}}/history.png",
            caption="../report/history.rst",
            category="Training curves",
        ),
    params:
        title=lambda w: (
            f"{w.experiment} (preset {PRESET}; {describe_dataset_source(experiment(w.experiment)['dataset'])})"
        ),
        seeds=SEEDS,
    log:
        f"{LOGS}/plot_history/{{experiment}}.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_history.py"
