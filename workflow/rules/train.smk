# Training (IIM, BPTT, resumable) and evaluation (IIM + EIM + time-shuffled control) per experiment.


rule train:
    input:
        train=lambda w: experiment_split(w.experiment, "train"),
        val=lambda w: experiment_split(w.experiment, "test"),
        init=lambda w: experiment_init(w.experiment),
        raw=lambda w: experiment_raw(w.experiment),
    output:
        model=f"{RESULTS}/experiments/{{experiment}}/model.pt",
        history=f"{RESULTS}/experiments/{{experiment}}/history.csv",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        # the dataset's training augmentation (bidl.data.augment); evaluation never applies it
        augment=lambda w: config["datasets"][experiment(w.experiment)["dataset"]].get("augment"),
        seed=config["seed"],
        device=config.get("device", "auto"),
        deterministic=config.get("deterministic", True),
        distributed=DISTRIBUTED,
    log:
        f"{LOGS}/train/{{experiment}}.log",
    benchmark:
        f"benchmarks/{PRESET}/train/{{experiment}}.tsv"
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
        metrics=f"{RESULTS}/experiments/{{experiment}}/metrics.json",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        timestep_hz=lambda w: experiment_timestep_hz(w.experiment),
        seed=config["seed"],
    log:
        f"{LOGS}/evaluate/{{experiment}}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/evaluate.py"


rule plot_history:
    input:
        history=rules.train.output.history,
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
    log:
        f"{LOGS}/plot_history/{{experiment}}.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_history.py"
