# Cost and speed (paper Table 1, Fig. 4, Table 3): the ST-layer counts of Table 1 measured against their
# formulas, and per trained network its MACs / accumulates (dense and with zero inputs skipped, from the
# evaluation data), multiplications, energy per sample (the config's energy section) and its latency and
# throughput on this machine.
from bidl.cost import ELEMENTWISE_SPLIT


rule st_layers:
    output:
        counts=f"{RESULTS}/measurements/st_layers.json",
        csv=f"{RESULTS}/figures/fig4.csv",
    params:
        shape=TABLE1_SHAPE,
        preset=PRESET,
        # the element-wise operations by class per output element of each kind (bidl.cost): a change of the
        # counting re-measures
        elementwise={kind: split.as_dict() for kind, split in ELEMENTWISE_SPLIT.items()},
    log:
        f"{LOGS}/cost/st_layers.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/measure_st_layers.py"


rule cost:
    input:
        model=lambda w: reference_model(w.experiment),
        test=lambda w: experiment_split(w.experiment, "test"),
        raw=lambda w: experiment_raw(w.experiment),
    output:
        cost=f"{RESULTS}/experiments/{{experiment}}/cost.json",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        max_samples=COST.get("max_samples", 64),
        # per-operation energies (picojoules) and their source: each network's energy per sample is written
        # into its cost.json; a change of the figures re-measures (None: no energy section, none written)
        energy=config.get("energy"),
    log:
        f"{LOGS}/cost/{{experiment}}.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/measure_cost.py"


# Timed alone: the job takes every core Snakemake was given, so no other job runs beside it.
rule latency:
    input:
        model=lambda w: reference_model(w.experiment),
        test=lambda w: experiment_split(w.experiment, "test"),
        raw=lambda w: experiment_raw(w.experiment),
        export=lambda w: exported(w.experiment),
    output:
        latency=f"{RESULTS}/experiments/{{experiment}}/latency.json",
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        settings=COST.get("latency", {}),
        timestep_hz=lambda w: experiment_timestep_hz(w.experiment),
        device=config.get("device", "auto"),
    log:
        f"{LOGS}/latency/{{experiment}}.log",
    threads: all_cores
    resources:
        mem_mb=4000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/measure_latency.py"
