# Raw data and preprocessing, one set of rules for every dataset of bidl.data.catalog.DATASETS:
#   standin       generate the stand-in in the real raw on-disk format      resources/<dataset>/standin/
#   download      fetch a scriptable real source, verify, extract            resources/<dataset>/<source>/
#   check_placed  check the files of a registration-only / private source    resources/<dataset>/<source>/
#                 (tries a scripted mirror first where one exists), or fail naming the files and where they go
#   preprocess    raw copy -> cached ST tensors and the seeded split         resources/cache/<preset>/<dataset>/
#   probe         does the data need order? an order-aware and an order-blind classifier, and the order-aware
#                 one on time-shuffled test inputs (bidl.probe)
#   datasets      one table of every dataset's source, splits, shapes, sizes, timings and probe results
# A raw copy is complete when its .complete marker exists (written last, atomically).


rule standin:
    output:
        marker="resources/{dataset}/{folder}/.complete",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
        folder="standin(-[A-Za-z0-9_-]+)?",
    params:
        dataset=lambda w: w.dataset,
        standin=lambda w: config["datasets"][w.dataset].get("standin", {}),
    log:
        "logs/{dataset}/{folder}.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/make_standin.py"


rule download:
    output:
        marker="resources/{dataset}/{source}/.complete",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
        source=SCRIPTED_SOURCE_PATTERN,
    params:
        dataset=lambda w: w.dataset,
        source=lambda w: w.source,
    log:
        "logs/{dataset}/download_{source}.log",
    threads: 1
    retries: 2
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/fetch_data.py"


rule check_placed:
    output:
        marker="resources/{dataset}/{source}/.complete",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
        source=MANUAL_SOURCE_PATTERN,
    params:
        dataset=lambda w: w.dataset,
        source=lambda w: w.source,
    log:
        "logs/{dataset}/check_placed_{source}.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/fetch_data.py"


rule preprocess:
    input:
        marker=lambda w: raw_marker(w.dataset),
    output:
        train=f"{CACHE}/{{dataset}}/train.npz",
        test=f"{CACHE}/{{dataset}}/test.npz",
        split=f"{CACHE}/{{dataset}}/split.json",
        info=f"{CACHE}/{{dataset}}/preprocess.json",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
    params:
        dataset=lambda w: w.dataset,
        preprocess=lambda w: preprocess_params(w.dataset),
    log:
        f"{LOGS}/{{dataset}}/preprocess.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/preprocess.py"


rule datasets:
    input:
        markers=[raw_marker(d) for d in DATASETS_DECLARED],
        infos=expand(f"{CACHE}/{{dataset}}/preprocess.json", dataset=DATASETS_DECLARED),
        tests=expand(f"{CACHE}/{{dataset}}/test.npz", dataset=DATASETS_DECLARED),
        probes=expand(f"{RESULTS}/probes/{{dataset}}/probe.json", dataset=DATASETS_DECLARED),
    output:
        markdown=report(f"{RESULTS}/tables/datasets.md", caption="../report/datasets.rst", category="Tables"),
        csv=f"{RESULTS}/tables/datasets.csv",
        latex=f"{RESULTS}/tables/datasets.tex",
    params:
        datasets=DATASETS_DECLARED,
        sources={d: dataset_source(d) for d in DATASETS_DECLARED},
        preset=PRESET,
        description=config.get("description", ""),
    log:
        f"{LOGS}/datasets.log",
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_datasets.py"


rule probe:
    input:
        train=f"{CACHE}/{{dataset}}/train.npz",
        test=f"{CACHE}/{{dataset}}/test.npz",
        split=f"{CACHE}/{{dataset}}/split.json",
        raw=lambda w: dataset_raw(w.dataset),
    output:
        json=f"{RESULTS}/probes/{{dataset}}/probe.json",
    wildcard_constraints:
        dataset=DATASET_PATTERN,
    params:
        dataset=lambda w: w.dataset,
        probe=lambda w: config["datasets"][w.dataset].get("probe", {}),
        loader=lambda w: config["datasets"][w.dataset].get("loader", {}),
        seed=REFERENCE_SEED,
    log:
        f"{LOGS}/{{dataset}}/probe.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/probe.py"
