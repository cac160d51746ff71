# Chip export (paper section 4): every trained paper network as a state-aware single-step graph (ONNX, fp32 and
# fp16; NIR where NIR can express it), verified by running the exported graphs on evaluation samples against
# the PyTorch network, and each graph's top-1 on the test split the evaluate rule uses (export.eval_samples caps
# it), streamed step by step through ONNX Runtime on the CPU (bidl.export.bundle, bidl.export.accuracy). The
# latency rule times the ONNX graph with ONNX Runtime.


rule export:
    input:
        model=lambda w: reference_model(w.experiment),
        test=lambda w: experiment_split(w.experiment, "test"),
        raw=lambda w: experiment_raw(w.experiment),
    output:
        folder=directory(f"{RESULTS}/export/{{experiment}}"),
    params:
        name=lambda w: w.experiment,
        experiment=lambda w: experiment(w.experiment),
        loader=lambda w: experiment_loader(w.experiment),
        settings=EXPORT,
        source=lambda w: describe_dataset_source(experiment(w.experiment)["dataset"]),
    log:
        f"{LOGS}/export/{{experiment}}.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/export_model.py"


rule export_table:
    input:
        folders=expand(f"{RESULTS}/export/{{experiment}}", experiment=EXPERIMENTS),
    output:
        markdown=report(f"{RESULTS}/tables/export.md", caption="../report/export.rst", category="Tables"),
        csv=f"{RESULTS}/tables/export.csv",
        latex=f"{RESULTS}/tables/export.tex",
    params:
        preset=PRESET,
        description=config.get("description", ""),
    log:
        f"{LOGS}/render/export.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_export.py"
