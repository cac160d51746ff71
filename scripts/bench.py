"""Speed of bidl's neurons against SpikingJelly 2.0 and snnTorch on this CPU (bidl.pipeline.bench): the LIF
layer alone and the Open Neuromorphic Linear + LIF workload (forward, forward+backward), one training step of
the DVS128 network against the same network built from SpikingJelly layers, and the memory bandwidth floor
from a measured copy. Writes one row per workload, pass and implementation (bench.csv) and the environment
(environment.json: versions, threads, CPU, bandwidth). The pipeline runs it alone, with all cores."""

import argparse
import json
from pathlib import Path
from typing import Any

from bidl.io import atomic_write_json, atomic_write_text, redirect_output
from bidl.pipeline.bench import COLUMNS, BenchSettings, bench_setup, run_bench
from bidl.pipeline.tables import to_csv


def main(
    *,
    settings: BenchSettings,
    experiment: dict[str, Any],
    input_shape: list[int],
    csv_file: Path,
    environment_file: Path,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    rows, environment = run_bench(
        settings, experiment, input_shape, threads=threads, log=lambda line: print(line, flush=True)
    )
    # both files replace their predecessors only once everything is measured: a crash leaves no new file
    atomic_write_text(csv_file, to_csv(COLUMNS, rows))
    atomic_write_json(environment_file, environment)
    print(json.dumps({k: v for k, v in environment.items() if k != "settings"}, indent=1), flush=True)
    return rows


def _from_snakemake(smk) -> None:
    with redirect_output(smk.log[0]):
        main(
            settings=BenchSettings.from_mapping(smk.params.settings),
            experiment=dict(smk.params.experiment),
            input_shape=list(smk.params.input_shape),
            csv_file=Path(smk.output.csv),
            environment_file=Path(smk.output.environment),
            threads=smk.threads,
        )


def _cli() -> None:
    from bidl.pipeline.config import load_yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="a preset")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/bench.csv, OUT/environment.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the preset's)")
    args = parser.parse_args()
    settings, experiment, input_shape = bench_setup(load_yaml(args.config))
    main(
        settings=settings,
        experiment=experiment,
        input_shape=input_shape,
        csv_file=args.out / "bench.csv",
        environment_file=args.out / "environment.json",
        threads=args.threads,
    )


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _cli()
