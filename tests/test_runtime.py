"""bidl.runtime: the retaining allocator, in this process and for processes started with its environment."""

import json
import platform
import subprocess
import sys
import textwrap

import pytest

from bidl.runtime import GLIBC_TUNABLES, retaining_environment

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A conv layer forward + backward on 40 MiB activations, five times after a first pass: the page faults
# (``ru_minflt``, a count, not a time) each later pass takes. ``inprocess`` applies retain_freed_memory first.
_PROBE = textwrap.dedent(
    """
    import json, resource, sys, torch
    if sys.argv[1] == "inprocess":
        from bidl.runtime import retain_freed_memory
        assert retain_freed_memory()
    torch.set_num_threads(1)
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    conv = torch.nn.Conv2d(4, 16, 3, padding=1)
    x = torch.randn(160, 4, 64, 64)
    conv(x).relu().sum().backward()
    counts = []
    for _ in range(5):
        before = faults()
        conv(x).relu().sum().backward()
        counts.append(faults() - before)
    print(json.dumps(counts))
    """
)


def _faults(mode: str, env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True
    ).stdout
    return sum(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_retaining_allocator_stops_refaulting_each_pass():
    plain = {k: v for k, v in retaining_environment().items() if k != "GLIBC_TUNABLES"}
    system = _faults("system", plain)
    by_environment = _faults("system", retaining_environment(plain))
    in_process = _faults("inprocess", plain)
    # each pass of the system allocator faults its 40 MiB outputs and gradients in anew (~50,000 pages a
    # pass measured); retained, the heap grows a few times and is then reused
    assert system > 100_000, system
    assert by_environment < system / 4, (by_environment, system)
    assert in_process < system / 4, (in_process, system)


def test_retaining_environment_keeps_the_users_tunables():
    env = retaining_environment({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=5:glibc.pthread.rseq=0", "A": "1"})
    items = env["GLIBC_TUNABLES"].split(":")
    assert items[:2] == ["glibc.malloc.mmap_max=5", "glibc.pthread.rseq=0"]  # the user's, first and kept
    assert f"glibc.malloc.trim_threshold={GLIBC_TUNABLES['glibc.malloc.trim_threshold']}" in items
    assert sum(item.startswith("glibc.malloc.mmap_max=") for item in items) == 1
    assert env["A"] == "1"
    assert retaining_environment({})["GLIBC_TUNABLES"] == ":".join(
        f"{k}={v}" for k, v in GLIBC_TUNABLES.items()
    )


def test_retain_freed_memory_reports_whether_it_applied():
    # in a child: this process's allocator stays as pytest started it
    code = "from bidl.runtime import retain_freed_memory; print(retain_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(GLIBC)


def test_allocator_in_use_reads_how_the_process_started():
    code = (
        "from bidl.runtime import allocator_in_use, retain_freed_memory\n"
        "before = allocator_in_use(); retain_freed_memory(); print(before, allocator_in_use())"
    )
    run = lambda env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    plain = {k: v for k, v in retaining_environment().items() if k != "GLIBC_TUNABLES"}
    if not GLIBC:
        assert run(plain) == ["not glibc", "not glibc"]
        return
    assert run(plain) == ["system", "retain"]
    assert run(retaining_environment(plain)) == ["retain", "retain"]
