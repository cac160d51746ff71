"""Latency and throughput of a network on this machine, in both iteration modes.

- **EIM streaming at batch 1** (how a sensor's stream is processed, and the form exported for chips): after a
  state reset, one call per timestep; every call is timed, giving the per-timestep latency (median, 95th
  percentile, max), and every sample's sum gives samples/s and timesteps/s.
- **Compiled EIM streaming at batch 1**: the same streams through the network compiled by
  :func:`bidl.stream.compile_stream` (one traced, frozen TorchScript call per timestep, the states fed back;
  the same values as the eager network), timed the same way; its record also holds the compile time. Where
  the network cannot be compiled the record says why.
- **IIM batched throughput** (how training and offline evaluation run): whole ``[B, T, ...]`` batches per
  call; samples/s and timesteps/s (timesteps of all samples of the batch).

Timing uses ``time.perf_counter`` around each call, with ``torch.cuda.synchronize`` on a GPU, after untimed
warm-up runs; no gradients. The record says what was measured where: device name, torch threads, torch
version, dtype. "fps" in the authors' code counts timesteps per second; here samples/s and timesteps/s are
reported separately and named.

**Real time.** A stream is processed in real time when every step is done before the sensor's next one
arrives: when the step's latency fits the sensor's step period (:func:`deadline`), judged on the 95th
percentile and the maximum of the measured steps. Throughput (timesteps/s over the sensor's rate, the
``real_time_factor`` of :func:`measure_latency`) says only that the steps fit on average: a median step well
under the period can still miss it on a slow step.

:func:`measure_onnxruntime` times an exported single-step graph (:mod:`bidl.export`) the same way, batch-1
streaming through :class:`~bidl.export.runtime.StepRuntime`, so that it can be quoted beside the PyTorch EIM
figures of the same run.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .state import iteration_mode, reset_states
from .stream import CompiledStream, StreamError, compile_stream

__all__ = [
    "deadline",
    "describe_device",
    "measure_latency",
    "measure_onnxruntime",
    "percentile",
    "real_time_cells",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` with linear interpolation (numpy's default).

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
        (2.5, 3.85)
    """
    if not values:
        raise ValueError("percentile: no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device | str) -> dict[str, Any]:
    """Where a measurement ran: device kind and name, torch threads and version."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(step: Callable[[Any], Any], sample, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds of each ``step(sample[:, t])`` call over a batch-1 sequence ``[1, T, ...]``."""
    steps = []
    for t in range(sample.shape[1]):
        frame = sample[:, t]
        sync()
        began = time.perf_counter()
        step(frame)
        sync()
        steps.append(time.perf_counter() - began)
    return steps


def _stream(model: nn.Module, sample: Tensor, device: torch.device) -> list[float]:
    """Per-timestep seconds of one batch-1 EIM pass over ``sample`` ``[1, T, ...]``."""
    reset_states(model)
    return _timed_steps(model, sample, lambda: _sync(device))


def _compiled_stream(stream: CompiledStream, sample: Tensor, device: torch.device) -> list[float]:
    """Per-timestep seconds of one batch-1 pass of the compiled stream over ``sample`` ``[1, T, ...]``."""
    stream.reset()
    return _timed_steps(stream.step, sample, lambda: _sync(device))


def _measure_compiled(
    model: nn.Module, streams: list[Tensor], device: torch.device, warmup: int
) -> dict[str, Any] | str:
    """The ``eim_compiled`` record: the streams through :func:`~bidl.stream.compile_stream`'s stream, after
    ``warmup`` untimed ones, or the reason the network could not be compiled."""
    try:
        stream = compile_stream(model, streams[0][:, 0])
    except StreamError as error:
        return f"not measured: compile_stream refused the network: {error}"
    for i in range(warmup):
        _compiled_stream(stream, streams[i % len(streams)], device)
    per_sample = [_compiled_stream(stream, s, device) for s in streams]
    return {
        **_eim_summary(per_sample, streams[0].shape[1]),
        "compile_s": stream.compile_seconds,
        "method": "bidl.stream.compile_stream: the single-step function traced and frozen (TorchScript)",
    }


def _batch(model: nn.Module, batch: Tensor, device: torch.device) -> float:
    """Seconds of one IIM forward pass over ``batch`` ``[B, T, ...]``."""
    reset_states(model)
    _sync(device)
    began = time.perf_counter()
    model(batch)
    _sync(device)
    return time.perf_counter() - began


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    samples: Sequence[Tensor],
    *,
    device: str | torch.device = "cpu",
    warmup: int = 1,
    batch_size: int = 16,
    batches: int = 3,
    timestep_hz: float | None = None,
    compiled: bool = True,
) -> dict[str, Any]:
    """Time ``model`` (eval mode) on ``samples`` (each ``[T, ...]``, e.g. the first evaluation samples).

    EIM: every sample is streamed once at batch 1 after ``warmup`` untimed streams, by the network and (with
    ``compiled``) by its compiled stream (:func:`bidl.stream.compile_stream`). IIM: ``batches`` timed
    forward passes over a batch of ``batch_size`` samples (the given ones, repeated cyclically) after
    ``warmup`` untimed ones. ``timestep_hz`` (the sensor's timesteps per second, if the input is a stream)
    adds the real-time factor: timesteps/s over ``timestep_hz``, > 1 is faster than the sensor.

    Returns a dict with ``eim`` (per-step ``step_ms_median``, ``step_ms_p95``, ``step_ms_max``,
    ``samples_per_s``, ``timesteps_per_s``, ``n_samples``, ``n_steps``), ``eim_compiled`` (the same for the
    compiled stream, plus ``compile_s``; or a string saying why it was not measured), ``iim``
    (``batch_size``, ``samples_per_s``, ``timesteps_per_s``, ``batch_ms_median``), ``timesteps``,
    ``real_time_factor`` (of the eager EIM) and the device record (:func:`describe_device`).
    """
    if not samples:
        raise ValueError("measure_latency: no samples")
    device = torch.device(device)
    model.eval().to(device)
    streams = [s.to(device).unsqueeze(0) for s in samples]
    timesteps = streams[0].shape[1]
    with iteration_mode(model, "external"):
        for i in range(warmup):
            _stream(model, streams[i % len(streams)], device)
        per_sample = [_stream(model, s, device) for s in streams]
    eim = _eim_summary(per_sample, timesteps)
    eim_compiled = (
        _measure_compiled(model, streams, device, warmup) if compiled else "not measured: compiled=False"
    )
    batch = torch.cat([streams[i % len(streams)] for i in range(batch_size)])
    with iteration_mode(model, "internal"):
        for _ in range(warmup):
            _batch(model, batch, device)
        batch_seconds = statistics.median(_batch(model, batch, device) for _ in range(batches))
    reset_states(model)
    eim_steps_per_s = eim["timesteps_per_s"]
    return {
        "timesteps": timesteps,
        "eim": eim,
        "eim_compiled": eim_compiled,
        "iim": {
            "batch_size": batch_size,
            "n_batches": batches,
            "batch_ms_median": 1e3 * batch_seconds,
            "samples_per_s": batch_size / batch_seconds,
            "timesteps_per_s": batch_size * timesteps / batch_seconds,
        },
        "sensor_timesteps_per_s": timestep_hz,
        "real_time_factor": eim_steps_per_s / timestep_hz if timestep_hz else None,
        **describe_device(device),
    }


def deadline(eim: dict[str, Any], timestep_hz: float | None) -> dict[str, Any] | None:
    """Whether batch-1 streaming keeps up with a sensor of ``timestep_hz`` timesteps per second, step by
    step: ``eim`` is an EIM record of :func:`measure_latency` or :func:`measure_onnxruntime` (its
    ``step_ms_median``, ``step_ms_p95``, ``step_ms_max``). Returns the sensor's step period ``period_ms`` and
    the period over the median, p95 and max step (``factor_median``, ``factor_p95``, ``factor_max``: > 1 means
    that step fits the period), with ``real_time_p95`` / ``real_time_max`` (the p95 / max step within the
    period); ``None`` where the input is not a stream (no ``timestep_hz``).

    Example:
        >>> deadline({"step_ms_median": 2.0, "step_ms_p95": 5.0, "step_ms_max": 40.0}, 40.0)["real_time_max"]
        False
    """
    if not timestep_hz:
        return None
    if timestep_hz < 0:
        raise ValueError(f"timestep_hz: expected > 0, got {timestep_hz}")
    period = 1e3 / timestep_hz
    factors = {f"factor_{q}": period / eim[f"step_ms_{q}"] for q in ("median", "p95", "max")}
    return {
        "period_ms": period,
        **factors,
        "real_time_p95": factors["factor_p95"] >= 1.0,
        "real_time_max": factors["factor_max"] >= 1.0,
    }


def real_time_cells(record: dict[str, Any], steps: Sequence[str] = ("p95", "max")) -> dict[str, str]:
    """A :func:`measure_latency` record's real-time factors as table cells: ``"real-time factor
    (throughput)"`` (timesteps/s over the sensor's rate) and ``"real-time factor (<q> step)"`` for each of
    ``steps`` (the sensor's step period over the median / p95 / max step, :func:`deadline`); every cell
    ``"n/a (not a stream)"`` where the input is not a stream."""
    columns = ["real-time factor (throughput)", *(f"real-time factor ({q} step)" for q in steps)]
    limits = deadline(record["eim"], record.get("sensor_timesteps_per_s"))
    if limits is None:
        return dict.fromkeys(columns, "n/a (not a stream)")
    factors = [record["real_time_factor"], *(limits[f"factor_{q}"] for q in steps)]
    return {column: f"{factor:.1f}x" for column, factor in zip(columns, factors, strict=True)}


def _eim_summary(per_sample: list[list[float]], timesteps: int) -> dict[str, Any]:
    steps_ms = [1e3 * s for sample in per_sample for s in sample]
    sample_seconds = statistics.median(sum(sample) for sample in per_sample)
    return {
        "batch_size": 1,
        "n_samples": len(per_sample),
        "n_steps": len(steps_ms),
        "step_ms_median": statistics.median(steps_ms),
        "step_ms_p95": percentile(steps_ms, 95),
        "step_ms_max": max(steps_ms),
        "samples_per_s": 1.0 / sample_seconds,
        "timesteps_per_s": timesteps / sample_seconds,
    }


def measure_onnxruntime(
    model_file: str | Path, samples: Sequence[Tensor], *, threads: int | None = None, warmup: int = 1
) -> dict[str, Any]:
    """Batch-1 EIM streaming of an exported step graph with ONNX Runtime (CPU): every sample ``[T, ...]``
    once after ``warmup`` untimed streams, each step timed (the states fed back by the runtime count in it).

    Returns the ``eim`` record of :func:`measure_latency` plus ``onnxruntime`` (its version), ``threads`` and
    the file measured.
    """
    import onnxruntime

    from .export.runtime import StepRuntime

    if not samples:
        raise ValueError("measure_onnxruntime: no samples")
    runtime = StepRuntime(model_file, threads=threads)
    streams = [s.unsqueeze(0).numpy() for s in samples]

    def stream(sample) -> list[float]:
        runtime.reset(1)
        return _timed_steps(runtime.step, sample)

    for i in range(warmup):
        stream(streams[i % len(streams)])
    per_sample = [stream(s) for s in streams]
    return {
        "eim": _eim_summary(per_sample, streams[0].shape[1]),
        "onnxruntime": onnxruntime.__version__,
        "threads": threads,
        "file": Path(model_file).name,
    }
