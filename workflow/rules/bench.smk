# Neuron speed (bidl.pipeline.bench): bidl's LIF against SpikingJelly 2.0 and snnTorch on this CPU, the DVS128
# training step against the same network built from SpikingJelly layers, the memory bandwidth floor, and
# batch-1 EIM streaming against ONNX Runtime. The
# peers are benchmark-only dependencies (README: the bench extra, SpikingJelly installed with --no-deps); the
# rule fails naming the install command where one is missing.


# Timed alone: the job takes every core Snakemake was given, so no other job runs beside it.
rule bench:
    output:
        csv=f"{RESULTS}/bench/bench.csv",
        environment=f"{RESULTS}/bench/environment.json",
    params:
        settings=BENCH,
        experiment=lambda w: BENCH_SETUP[1],
        input_shape=lambda w: BENCH_SETUP[2],
    log:
        f"{LOGS}/bench/bench.log",
    benchmark:
        f"benchmarks/{PRESET}/bench.tsv"
    threads: all_cores
    resources:
        mem_mb=6000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/bench.py"


rule bench_table:
    input:
        csv=rules.bench.output.csv,
        environment=rules.bench.output.environment,
    output:
        markdown=report(f"{RESULTS}/tables/bench.md", caption="../report/bench.rst", category="Tables"),
        csv=f"{RESULTS}/tables/bench.csv",
        latex=f"{RESULTS}/tables/bench.tex",
    params:
        preset=PRESET,
        description=config.get("description", ""),
    log:
        f"{LOGS}/render/bench.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_bench.py"


rule bench_figure:
    input:
        csv=rules.bench.output.csv,
    output:
        figure=report(f"{RESULTS}/figures/bench.png", caption="../report/bench_figure.rst", category="Figures"),
    params:
        preset=PRESET,
    log:
        f"{LOGS}/render/bench_figure.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/plot_bench.py"
