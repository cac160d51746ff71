"""Where a pipeline run's time went: every job's wall time from Snakemake's log, summed per rule.

Snakemake writes one log per invocation (``.snakemake/log/<date>.snakemake.log``) with the time each job
started (``[<date>]`` before ``rule <name>:`` / ``localrule <name>:``), its ``jobid``, ``wildcards`` and
``threads``, and ``Finished jobid: <n>`` after the time it ended. This reads such a log and prints, per rule,
the jobs, their summed wall seconds, the core-seconds (wall x threads), the share of all core-seconds, and
the longest job; then the run's wall time and how busy the cores were (core-seconds over wall x cores). The
``benchmark:`` files of the rules that have them (``benchmarks/<preset>/...tsv``) give each job's peak memory
too, listed for the longest jobs.

The pipeline runs jobs side by side, so a rule's wall seconds are not the run's: the core-seconds are what a
cut saves, divided by the cores for the run's wall time.

Usage: ``python tools/pipeline_profile.py [LOG] [--cores 2] [--top 15]`` (LOG: by default the newest log
that ran jobs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_TIME = re.compile(r"\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]")
_RULE = re.compile(r"(?:local)?rule (\w+):")
_JOBID = re.compile(r"\s+jobid: (\d+)")
_WILDCARDS = re.compile(r"\s+wildcards: (.*)")
_THREADS = re.compile(r"\s+threads: (\d+)")
_FINISHED = re.compile(r"Finished jobid: (\d+)")


@dataclass
class Job:
    rule: str
    wildcards: str
    threads: int
    start: dt.datetime
    end: dt.datetime | None = None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.end else 0.0


def read_jobs(log: Path) -> list[Job]:
    """The finished jobs of one Snakemake log; ``ValueError`` naming the file if it holds none."""
    jobs: dict[str, Job] = {}
    now = rule = last = None
    for line in log.read_text().splitlines():
        if m := _TIME.match(line):
            now = dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None and now is not None:
            last = m.group(1)
            jobs[last] = Job(rule, "", 1, now)
            rule = None
        elif (m := _WILDCARDS.match(line)) and last in jobs:
            jobs[last].wildcards = m.group(1)
        elif (m := _THREADS.match(line)) and last in jobs:
            jobs[last].threads = int(m.group(1))
        elif (m := _FINISHED.match(line)) and m.group(1) in jobs and now is not None:
            jobs[m.group(1)].end = now
    finished = [job for job in jobs.values() if job.end is not None]
    if not finished:
        raise ValueError(f"{log}: no finished job in this Snakemake log")
    return finished


def _benchmark_key(tsv: Path, root: Path) -> tuple[str, ...]:
    """The wildcard values a benchmark file names: ``benchmarks/<preset>/train/dvs128_asm/seed0.tsv`` ->
    ``("dvs128_asm", "0")``, ``benchmarks/<preset>/bench.tsv`` -> ``("bench",)``."""
    parts = list(tsv.relative_to(root / "benchmarks").with_suffix("").parts[1:])
    parts = parts[1:] if len(parts) > 1 else parts  # the folder of the rule's files
    return tuple(part[4:] if part.startswith("seed") and part[4:].isdigit() else part for part in parts)


def _peak_memory(root: Path) -> dict[tuple[str, ...], float]:
    """Peak resident MB (``max_rss``) per benchmark file of ``benchmarks/**/*.tsv``, keyed by the wildcard
    values its path names (:func:`_benchmark_key`)."""
    peaks = {}
    for tsv in (root / "benchmarks").glob("**/*.tsv"):
        lines = tsv.read_text().splitlines()
        if len(lines) >= 2:
            row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))
            try:
                peaks[_benchmark_key(tsv, root)] = float(row.get("max_rss", "nan"))
            except ValueError:
                continue
    return peaks


def report(jobs: list[Job], cores: int, top: int, peaks: dict[tuple[str, ...], float]) -> str:
    start = min(job.start for job in jobs)
    end = max(job.end for job in jobs)
    wall = (end - start).total_seconds()
    per_rule: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        per_rule[job.rule].append(job)
    total_core = sum(job.seconds * job.threads for job in jobs)
    lines = [
        f"{len(jobs)} jobs, wall {wall / 60:.1f} min on {cores} cores; the jobs' core-seconds "
        f"{total_core:.0f} ({total_core / max(wall * cores, 1e-9) * 100:.0f} % of wall x cores)",
        "",
        "| rule | jobs | wall s (sum) | core-s | share | longest job |",
        "|---|---|---|---|---|---|",
    ]
    ranked = sorted(per_rule.items(), key=lambda kv: -sum(j.seconds * j.threads for j in kv[1]))
    for rule, rule_jobs in ranked:
        core = sum(j.seconds * j.threads for j in rule_jobs)
        longest = max(rule_jobs, key=lambda j: j.seconds)
        lines.append(
            f"| {rule} | {len(rule_jobs)} | {sum(j.seconds for j in rule_jobs):.0f} | {core:.0f} | "
            f"{core / total_core * 100:.1f} % | {longest.seconds:.0f} s {longest.wildcards} |"
        )
    lines += ["", f"The {top} longest jobs:", "", "| job | wall s | threads | peak MB |", "|---|---|---|---|"]
    for job in sorted(jobs, key=lambda j: -j.seconds)[:top]:
        values = (
            tuple(w.split("=", 1)[1] for w in job.wildcards.split(", ")) if job.wildcards else (job.rule,)
        )
        peak = peaks.get(values)
        peak_text = "-" if peak is None else f"{peak:.0f}"
        lines.append(f"| {job.rule} {job.wildcards} | {job.seconds:.0f} | {job.threads} | {peak_text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "log", nargs="?", type=Path, help="a .snakemake/log/*.snakemake.log (default: the newest)"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the workflow's directory")
    parser.add_argument("--cores", type=int, default=2, help="the --cores the run had")
    parser.add_argument("--top", type=int, default=15, help="how many of the longest jobs to list")
    args = parser.parse_args()
    if args.log is not None:
        jobs = read_jobs(args.log)
    else:  # the newest log that ran jobs (a dry run or a report writes one too)
        folder = args.root / ".snakemake" / "log"
        jobs = None
        for log in sorted(folder.glob("*.snakemake.log"), reverse=True):
            try:
                jobs = read_jobs(log)
                break
            except ValueError:
                continue
        if jobs is None:
            raise SystemExit(f"{folder}: no Snakemake log with a finished job; run the pipeline first")
    print(report(jobs, args.cores, args.top, _peak_memory(args.root)))


if __name__ == "__main__":
    main()
