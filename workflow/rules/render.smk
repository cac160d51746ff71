# Tables rendered from the saved measurements only (no retraining, no re-measuring).


rule table2:
    input:
        metrics=expand(f"{RESULTS}/experiments/{{experiment}}/metrics.json", experiment=EXPERIMENTS),
    output:
        markdown=report(f"{RESULTS}/tables/table2.md", caption="../report/table2.rst", category="Tables"),
        csv=f"{RESULTS}/tables/table2.csv",
    log:
        f"{LOGS}/render/table2.log",
    threads: 1
    conda:
        "../../envs/bidl.yaml"
    script:
        "../../scripts/render_table2.py"
