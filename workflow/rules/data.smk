# Raw data (generated stand-in, or the real download / placed files) and preprocessing to cached frames.


rule dvs128_standin:
    output:
        marker="resources/dvs128_gesture/standin/.complete",
    params:
        dataset="dvs128_gesture",
        standin=config["datasets"]["dvs128_gesture"].get("standin", {}),
    log:
        "logs/dvs128_gesture/standin.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/make_standin.py"


rule dvs128_fetch:
    output:
        marker="resources/dvs128_gesture/{source}/.complete",
    wildcard_constraints:
        source="ibm|tonic",
    params:
        dataset="dvs128_gesture",
        source=lambda w: w.source,
    log:
        "logs/dvs128_gesture/fetch_{source}.log",
    threads: 1
    retries: 2
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/fetch_data.py"


rule dvs128_preprocess:
    input:
        marker=raw_marker("dvs128_gesture"),
    output:
        train=f"{CACHE}/dvs128_gesture/train.npz",
        test=f"{CACHE}/dvs128_gesture/test.npz",
        split=f"{CACHE}/dvs128_gesture/split.json",
    params:
        dataset="dvs128_gesture",
        preprocess={
            "layout": RAW_LAYOUTS[("dvs128_gesture", dataset_source("dvs128_gesture"))],
            **config["datasets"]["dvs128_gesture"]["preprocess"],
        },
    log:
        f"{LOGS}/dvs128_gesture/preprocess.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/preprocess.py"
