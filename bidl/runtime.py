"""Process settings that change how fast training runs, not what it computes.

**The allocator.** PyTorch's CPU tensors come from the C library's ``malloc``. glibc hands every block of
32 MiB or more (and, after its adaptive threshold, many smaller ones) straight back to the operating system on
``free`` and maps fresh pages for the next request, so every large activation of every training step is
page-faulted in again: each page costs a kernel trap and a zeroing, dear inside a virtual machine. A spiking
network allocates dozens of such tensors per step (one per layer and timestep batch, forward and backward).
With glibc told to keep what is freed (``mmap_max=0``: large blocks come from the heap too;
``trim_threshold`` 2**62: the heap is never shrunk), the pages are faulted in once, on the first step.

Measured on 2 cores of an AMD EPYC virtual machine, one thread, median of 5 (docs/performance.md): the
default preset's DVS128 training step (batch 16, 60 steps) 218 -> 163 ms, the DVS128 ConvLSTM baseline's
1260 -> 850 ms; the price is that a process keeps its peak memory until it exits (ConvLSTM peak resident
995 -> 1396 MB: freed blocks are reused, not returned).

Two ways to apply it, the same settings:

- :func:`retain_freed_memory` in the running process (``mallopt``; from then on);
- :func:`retaining_environment` for processes about to start (``GLIBC_TUNABLES``, read when a process
  starts): the pipeline sets it for every job it runs (config key ``allocator``).

Neither does anything where the C library is not glibc (macOS, musl): they report that they did not apply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from collections.abc import Mapping

__all__ = [
    "ALLOCATOR_MODES",
    "GLIBC_TUNABLES",
    "allocator_in_use",
    "retain_freed_memory",
    "retaining_environment",
]

ALLOCATOR_MODES = ("retain", "system")

# mallopt parameters (malloc.h) and the values both routes set
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**62  # never give the top of the heap back
GLIBC_TUNABLES = {"glibc.malloc.mmap_max": "0", "glibc.malloc.trim_threshold": str(_TRIM_THRESHOLD)}


_applied_here = False  # retain_freed_memory ran in this process


def _is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def retain_freed_memory() -> bool:
    """Tell glibc's ``malloc`` in this process to keep freed memory for reuse (see the module docstring).
    Affects allocations from now on; returns whether it applied (``False`` off glibc)."""
    if not _is_glibc():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    trim = min(_TRIM_THRESHOLD, 2**31 - 1)  # mallopt takes an int: 2 GiB of free heap top is kept
    global _applied_here
    _applied_here = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))
    return _applied_here


def retaining_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) whose ``GLIBC_TUNABLES`` makes processes started with
    it keep freed memory; tunables already set there win over these (a user's own choice stays)."""
    env = dict(os.environ if environ is None else environ)
    given = [item for item in env.get("GLIBC_TUNABLES", "").split(":") if item]
    names = {item.split("=", 1)[0] for item in given}
    added = [f"{name}={value}" for name, value in GLIBC_TUNABLES.items() if name not in names]
    env["GLIBC_TUNABLES"] = ":".join(given + added)
    return env


def allocator_in_use() -> str:
    """``"retain"`` where this process keeps freed memory (:func:`retain_freed_memory` ran, or it started
    with the tunables of :func:`retaining_environment`), ``"system"`` where glibc's defaults hold, and
    ``"not glibc"`` elsewhere: what a benchmark records beside its timings."""
    if not _is_glibc():
        return "not glibc"
    given = dict(
        item.split("=", 1) for item in os.environ.get("GLIBC_TUNABLES", "").split(":") if "=" in item
    )
    started_retaining = given.get("glibc.malloc.mmap_max") == "0"
    return "retain" if _applied_here or started_retaining else "system"
