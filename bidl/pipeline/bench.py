r"""Speed of bidl's neurons against SpikingJelly 2.0, snnTorch and ONNX Runtime on this CPU (the pipeline's
``bench`` rule).

Four parts, measured in one process with the same torch (and numba) threads:

- **(a) neuron layers**: the LIF layer alone on ``[T, B, C, H, W]`` and the Open Neuromorphic workload (a
  Linear layer ``n -> n`` then LIF, batch 16, T = 500); forward and forward+backward; bidl's public API
  (whichever neuron path is its default, and its reference step loop beside it where bidl offers the
  choice), SpikingJelly's ``LIFNode(step_mode="m")`` on its default CPU path (the ``sj_lif`` torch op) and
  snnTorch's ``Leaky`` driven step by step. Each library gets its own layout: bidl ``[B, T, ...]``, the peers
  ``[T, B, ...]``, each contiguous. The LIF layer with BatchNorm on its membrane (the paper's and the
  authors' placement, training mode): bidl's default path against its reference step loop; no peer library
  has this neuron.
- **(b) one training step of the DVS128 network**: forward, cross-entropy, backward and optimiser step of
  bidl's network (as a preset's experiment configures it) against the same network built from SpikingJelly
  layers with bidl's weights copied in (:class:`SpikingJellyDVS128`); and in the paper's configuration
  (``dvs128.paper_model_kwargs``, e.g. BatchNorm on the membrane) against the network SpikingJelly users build
  for it (BatchNorm on the synaptic current: its LIFNode has none on the membrane).
- **(c) the memory bandwidth floor**: ``dst.copy_(src)`` on a large float32 tensor gives the bytes per second
  this machine moves (read + write); a LIF layer must at least move the bytes :func:`lif_floor_bytes` counts,
  so ``bytes / bandwidth`` is a time no implementation can beat, and every implementation's median is quoted
  as a multiple of it.
- **(d) batch-1 EIM streaming** of the DVS128 network (eval mode): bidl's modules stepped eagerly, bidl's
  compiled single-step graph (:mod:`bidl.stream`) and the exported ONNX step graph in ONNX Runtime, per step.

The same function in the three libraries (up to exact threshold ties, ``>`` in bidl, ``>=`` in SpikingJelly):

.. math::

    \text{bidl:}\quad U_t = X_t + V_{t-1},\ F_t = 1[U_t > \theta],\ V_t = \alpha (1 - F_t) U_t
    \qquad (\beta = v_{reset} = 0)

SpikingJelly ``LIFNode(tau=1/(1-alpha), decay_input=False, v_threshold=theta, v_reset=0)`` charges
:math:`H_t = V_{t-1} - V_{t-1}/\tau + X_t = \alpha V_{t-1} + X_t` and resets to 0; snnTorch
``Leaky(beta=alpha, threshold=theta, reset_mechanism="zero")`` computes
:math:`M_t = \alpha (1 - F_{t-1}) M_{t-1} + X_t`. The surrogate gradient is the same function in all three
(``sigmoid``: :math:`k\sigma(kx)(1-\sigma(kx))`, k = 4; ``arctan``: k = 2), so the backward does the same
work; snnTorch detaches its reset (no gradient through it), the other two do not.

Timing (:func:`measure_interleaved`): the implementations of one workload and pass are timed against each
other: ``warmup`` untimed calls of each, then ``repeats`` rounds in which each is timed once
(``time.perf_counter``; round-robin, so that a disturbance of the machine falls on all of them), of which the
median, min and max are kept. "forward" runs as training runs it: inputs that require a gradient, the
autograd graph built; "forward+backward" adds the backward from a fixed random output gradient. Peak memory
comes from one more call: the resident-set high-water mark (``VmHWM``, reset by writing 5 to
``/proc/self/clear_refs``) less the resident set before the call; where the kernel refuses the reset it is
reported unavailable, never estimated.

Example:
    >>> timing = measure(lambda: sum(range(1000)), repeats=5, warmup=1, memory=False)
    >>> len(timing.times), timing.peak_rss_bytes is None
    (5, True)
"""

from __future__ import annotations

import copy
import ctypes
import gc
import importlib
import importlib.metadata
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import BidlError, ConfigError
from ..functional.kernels import release_buffers

__all__ = [
    "COLUMNS",
    "FLOOR_COUNTS",
    "PASSES",
    "PEERS",
    "SUMMARY_COLUMNS",
    "SURROGATES",
    "BenchSettings",
    "MissingPeerError",
    "SpikingJellyDVS128",
    "Timing",
    "bench_setup",
    "bidl_lif",
    "bidl_bn_lif",
    "bidl_paths",
    "bn_layer_rows",
    "copy_bandwidth",
    "cpu_name",
    "dvs128_networks",
    "dvs128_rows",
    "eim_rows",
    "environment",
    "floor_seconds",
    "layer_rows",
    "lif_floor_bytes",
    "linear_lif_rows",
    "measure",
    "measure_interleaved",
    "numba_threads",
    "peak_rss",
    "require_peer",
    "run_bench",
    "set_threads",
    "snntorch_leaky",
    "snntorch_sequence",
    "speedups",
    "spikingjelly_lif",
    "summary_rows",
]

PASSES = ("forward", "forward+backward")
SURROGATES = ("sigmoid", "arctan")
"""Surrogate gradients all three libraries implement as the same function: bidl ``sigmoid`` (k = 4) =
SpikingJelly ``Sigmoid(alpha=4)`` (its default) = snnTorch ``sigmoid(slope=4)``; bidl ``arctan`` (k = 2) =
SpikingJelly ``ATan(alpha=2)`` = snnTorch ``atan(alpha=2)``."""
_SURROGATE_SCALE = {"sigmoid": 4.0, "arctan": 2.0}

SPIKINGJELLY_INSTALL = "pip install --no-deps spikingjelly==2.0.0 && pip install -e '.[bench]'"
SNNTORCH_INSTALL = "pip install -e '.[bench]'"


@dataclass(frozen=True)
class Peer:
    """A library the bench compares bidl with: its import name, the major version measured, how to install."""

    module: str
    title: str
    major: str
    install: str


PEERS = {
    "spikingjelly": Peer(
        "spikingjelly",
        "SpikingJelly",
        "2",
        SPIKINGJELLY_INSTALL
        + "  (--no-deps: its metadata pulls torchvision, torchaudio and tensorboard, which would replace the "
        "CPU torch with a CUDA build; loguru, the one module it needs at import, comes with the bench extra)",
    ),
    "snntorch": Peer("snntorch", "snnTorch", "1", SNNTORCH_INSTALL),
}


class MissingPeerError(BidlError, ImportError):
    """A peer library of the bench is not installed (or not the version measured); the message says how."""


def require_peer(name: str) -> Any:
    """Import the peer ``name`` (a key of :data:`PEERS`), or raise :class:`MissingPeerError` naming the
    package and the exact install command. A peer of another major version is refused the same way (its
    default path would be another one)."""
    peer = PEERS[name]
    try:
        module = importlib.import_module(peer.module)
        version = importlib.metadata.version(peer.module)
    except ImportError as err:  # also PackageNotFoundError
        raise MissingPeerError(
            f"{peer.module} is not installed ({err}); the bench compares bidl with {peer.title} "
            f"{peer.major}.x in the same process. Install it with: {peer.install}"
        ) from None
    if version.split(".")[0] != peer.major:
        raise MissingPeerError(
            f"{peer.module} {version} is installed; the bench measures {peer.title} {peer.major}.x. "
            f"Install it with: {peer.install}"
        )
    return module


def peer_version(name: str) -> str:
    return importlib.metadata.version(PEERS[name].module)


# -- settings --


@dataclass(frozen=True)
class BenchSettings:
    """The config's ``bench`` section (``config/*.yaml``; the schema documents every key)."""

    repeats: int = 5
    warmup: int = 1
    threads: int | None = None
    seed: int = 0
    surrogate: str = "sigmoid"
    copy_mb: int = 256
    memory: bool = True
    lif_shape: tuple[int, ...] = (60, 16, 32, 40, 40)
    lif_alpha: float = 0.3
    lif_theta: float = 0.5
    lif_bn_shape: tuple[int, ...] | None = None
    lif_bn_noise: float = 0.0
    linear_timesteps: int = 500
    linear_batch_size: int = 16
    linear_neurons: tuple[int, ...] = (512, 1024)
    linear_alpha: float = 0.3
    linear_theta: float = 0.5
    dvs128_experiment: str = "dvs128_asm"
    dvs128_model_kwargs: dict[str, Any] = field(default_factory=dict)
    dvs128_paper_model_kwargs: dict[str, Any] | None = None
    dvs128_input_density: float = 0.05

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> BenchSettings:
        """Build from the config's ``bench`` mapping, the absent keys at their defaults. The section is
        checked against the config schema's ``bench`` definition (its one statement of the keys and their
        ranges); a bad value raises :class:`ConfigError` naming the key (``bench.repeats`` ...)."""
        from .config import validate_section

        section = dict(section or {})
        validate_section(section, "bench", "bench")
        lif = section.get("lif_layer") or {}
        lif_bn = section.get("lif_bn_layer")
        linear = section.get("linear_lif") or {}
        dvs = section.get("dvs128") or {}
        paper = dvs.get("paper_model_kwargs")
        return cls(
            repeats=section.get("repeats", cls.repeats),
            warmup=section.get("warmup", cls.warmup),
            threads=section.get("threads"),
            seed=section.get("seed", cls.seed),
            surrogate=section.get("surrogate", cls.surrogate),
            copy_mb=section.get("copy_mb", cls.copy_mb),
            memory=section.get("memory", cls.memory),
            lif_shape=tuple(lif.get("shape", cls.lif_shape)),
            lif_alpha=float(lif.get("alpha", cls.lif_alpha)),
            lif_theta=float(lif.get("theta", cls.lif_theta)),
            lif_bn_shape=None if lif_bn is None else tuple(lif_bn.get("shape", ())),
            lif_bn_noise=float((lif_bn or {}).get("noise", cls.lif_bn_noise)),
            linear_timesteps=linear.get("timesteps", cls.linear_timesteps),
            linear_batch_size=linear.get("batch_size", cls.linear_batch_size),
            linear_neurons=tuple(linear.get("neurons", cls.linear_neurons)),
            linear_alpha=float(linear.get("alpha", cls.linear_alpha)),
            linear_theta=float(linear.get("theta", cls.linear_theta)),
            dvs128_experiment=str(dvs.get("experiment", cls.dvs128_experiment)),
            dvs128_model_kwargs=dict(dvs.get("model_kwargs") or {}),
            dvs128_paper_model_kwargs=None if paper is None else dict(paper),
            dvs128_input_density=float(dvs.get("input_density", cls.dvs128_input_density)),
        )


# -- environment --


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; :func:`bidl.latency.describe_device`)."""
    from ..latency import describe_device

    return describe_device("cpu")["device_name"]


def set_threads(threads: int) -> int:
    """Give torch ``threads`` threads; return the count it now uses. bidl's numba kernels take torch's count
    on every call (numba is not touched here: launching its threads before bidl imports its kernels would
    fix numba's threading layer before bidl chooses one)."""
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def numba_threads() -> dict[str, Any]:
    """numba's thread count and threading layer where bidl has launched numba's threads (``None`` where it
    has not: numba is not installed or bidl ran no numba kernel)."""
    try:
        import numba

        layer = numba.threading_layer()  # ValueError until numba's threads are launched
    except (ImportError, ValueError):
        return {"numba_threads": None, "numba_threading_layer": None}
    return {"numba_threads": numba.get_num_threads(), "numba_threading_layer": layer}


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine disturbs the timings."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _version(module: str) -> str | None:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Where the bench ran: CPU, cores, threads, the allocator, and the versions of torch, numba, bidl and
    the peers."""
    import bidl
    from bidl.runtime import allocator_in_use

    return {
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numba": _version("numba"),
        **numba_threads(),
        "bidl": bidl.__version__,
        "spikingjelly": _version("spikingjelly"),
        "snntorch": _version("snntorch"),
        "allocator": allocator_in_use(),
    }


# -- timing and memory --


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call, and the peak resident-set growth of one more call (bytes; ``None`` where
    not measured, ``peak_rss_status`` says why)."""

    times: tuple[float, ...]
    peak_rss_bytes: int | None = None
    peak_rss_status: str = "not measured"

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


def _status_kib(field_name: str) -> int:
    match = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise OSError(f"/proc/self/status has no {field_name}")
    return int(match.group(1))


def _release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``), so that memory a previous call
    freed but the allocator kept does not hide a call's own growth; False where there is no glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) >= 0)
    except (OSError, AttributeError):
        return False


def peak_rss(
    fn: Callable[[], Any], clear_refs: Path = Path("/proc/self/clear_refs")
) -> tuple[int | None, str]:
    """Run ``fn`` once; return how far the resident set rose above its level before the call (bytes), and
    how that was measured. Before the call, the fused kernels' output pool gives back its free buffers
    (:func:`bidl.functional.kernels.release_buffers`: the call allocates what it uses, as the peers' calls
    do), freed heap pages go back to the system (``malloc_trim``) and
    the high-water mark ``VmHWM`` is reset to the current resident set by writing 5 to
    ``/proc/self/clear_refs``; where that is refused (no procfs, or a kernel without it), ``fn`` still runs
    and the result is ``(None, "unavailable: ...")``."""
    gc.collect()
    release_buffers()
    trimmed = _release_free_memory()
    try:
        clear_refs.write_text("5")
        before = _status_kib("VmRSS")
    except OSError as err:
        fn()
        return None, f"unavailable: {clear_refs} refused ({err})"
    fn()
    how = "VmHWM after clear_refs less VmRSS before, kernel buffers released" + (
        ", heap trimmed first" if trimmed else ""
    )
    return (_status_kib("VmHWM") - before) * 1024, how


def measure(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, memory: bool = True) -> Timing:
    """Time ``fn``: ``warmup`` untimed calls, ``repeats`` timed ones, then (``memory``) one more for the peak
    resident-set growth (:func:`peak_rss`), not counted in the times."""
    return measure_interleaved({"fn": fn}, repeats=repeats, warmup=warmup, memory=memory)["fn"]


def measure_interleaved(
    calls: Mapping[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1, memory: bool = True
) -> dict[str, Timing]:
    """Time several ``calls`` against each other: ``warmup`` untimed calls of each, then ``repeats`` rounds
    in which each is timed once (round-robin, so that a disturbance of the machine falls on all of them
    rather than on one), then (``memory``) one more call of each for its peak resident-set growth
    (:func:`peak_rss`), not counted in the times. The garbage collector runs before each timed call."""
    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    gc.collect()
    gc.freeze()  # what exists now is never garbage here: the collections between calls skip it (fast)
    try:
        for fn in calls.values():
            for _ in range(warmup):
                fn()
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, fn in calls.items():
                gc.collect()
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        timings = {}
        for name, fn in calls.items():
            peak, status = peak_rss(fn) if memory else (None, "not measured")
            timings[name] = Timing(tuple(times[name]), peak, status)
    finally:
        gc.unfreeze()
    return timings


def copy_bandwidth(megabytes: int = 256, *, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """The memory bandwidth of ``dst.copy_(src)`` on a float32 tensor of ``megabytes`` MB (10^6 bytes),
    counting each byte read and each byte written: ``2 * nbytes / median time``."""
    numel = megabytes * 1_000_000 // 4
    src = torch.rand(numel)
    dst = torch.empty_like(src)
    timing = measure(lambda: dst.copy_(src), repeats=repeats, warmup=warmup, memory=False)
    moved = 2 * src.numel() * src.element_size()
    return {
        "copy_mb": megabytes,
        "bytes_moved": moved,
        "times_s": list(timing.times),
        "median_s": timing.median,
        "bytes_per_s": moved / timing.median,
    }


def lif_floor_bytes(numel: int, pass_: str, itemsize: int = 4) -> int:
    """The fewest bytes a LIF layer of ``numel`` elements (all timesteps) must move in ``pass_``: forward
    reads the input current and writes the output spikes (2 tensors); forward+backward adds the backward,
    which reads the input again (the surrogate needs every membrane, recomputed from it), reads the output
    gradient and writes the input gradient (3 more tensors: 5 in all). Every tensor in ``itemsize`` bytes
    (float32, as every library here stores them).

    Example:
        >>> lif_floor_bytes(10, "forward"), lif_floor_bytes(10, "forward+backward")
        (80, 200)
    """
    tensors = {"forward": 2, "forward+backward": 5}
    if pass_ not in tensors:
        raise ValueError(f"pass: unknown {pass_!r}; choose one of {PASSES}")
    return tensors[pass_] * numel * itemsize


FLOOR_COUNTS = {
    "forward": "read x, write y (fp32)",
    "forward+backward": "read x, write y; backward: read x again, read grad_y, write grad_x (fp32)",
}


def floor_seconds(nbytes: int, bytes_per_s: float) -> float:
    """The time moving ``nbytes`` takes at the measured ``bytes_per_s``: no implementation is faster.

    Example:
        >>> floor_seconds(2_000_000_000, 10e9)
        0.2
    """
    if bytes_per_s <= 0:
        raise ValueError(f"bytes_per_s: expected > 0, got {bytes_per_s}")
    return nbytes / bytes_per_s


# -- the three libraries' LIF --


def bidl_paths() -> list[tuple[str, str | None, str]]:
    """bidl's rows: ``(implementation, kernel to force or None, the path it runs)``. Its default path, and
    the reference step loop beside it where the default is another."""
    import bidl.functional as functional

    default = functional.default_neuron_kernel()
    paths = [("bidl", None, default)]
    if default != "reference":
        paths.append(("bidl (reference step loop)", "reference", "reference"))
    return paths


def _kernel(name: str | None):
    """The context that makes bidl run ``name`` (``None``: its default)."""
    if name is None:
        return nullcontext()
    from bidl.functional import neuron_kernel

    return neuron_kernel(name)


def bidl_lif(alpha: float, theta: float, surrogate: str) -> nn.Module:
    """bidl's LIF (IIM, ``[B, T, ...]``) with ``beta = v_reset = 0``, hard reset, fixed parameters."""
    from ..neurons import LIF

    return LIF(alpha=alpha, theta=theta, surrogate=surrogate)  # its default scale: k = 4 / 2 (SURROGATES)


def spikingjelly_lif(alpha: float, theta: float, surrogate: str) -> nn.Module:
    """SpikingJelly's multi-step ``LIFNode`` computing bidl's LIF (``tau = 1 / (1 - alpha)``, no input
    decay, hard reset to 0), on its default path, with the same surrogate gradient."""
    require_peer("spikingjelly")
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based import surrogate as sj_surrogate

    function = {"sigmoid": sj_surrogate.Sigmoid, "arctan": sj_surrogate.ATan}[surrogate]
    return neuron.LIFNode(
        tau=1.0 / (1.0 - alpha),
        decay_input=False,
        v_threshold=theta,
        v_reset=0.0,
        surrogate_function=function(alpha=_SURROGATE_SCALE[surrogate]),
        step_mode="m",
    )


def snntorch_leaky(alpha: float, theta: float, surrogate: str) -> nn.Module:
    """snnTorch's ``Leaky`` computing bidl's LIF (``beta = alpha``, reset to zero), same surrogate."""
    snn = require_peer("snntorch")
    from snntorch import surrogate as snn_surrogate

    scale = _SURROGATE_SCALE[surrogate]
    spike_grad = snn_surrogate.sigmoid(slope=scale) if surrogate == "sigmoid" else snn_surrogate.atan(scale)
    return snn.Leaky(beta=alpha, threshold=theta, reset_mechanism="zero", spike_grad=spike_grad)


def snntorch_sequence(leaky: nn.Module, x_seq: Tensor) -> Tensor:
    """Drive a snnTorch ``Leaky`` over a time-first ``[T, ...]`` sequence from the zero state."""
    mem = leaky.reset_mem()
    spikes = []
    for x in x_seq:
        spike, mem = leaky(x, mem)
        spikes.append(spike)
    return torch.stack(spikes)


def _reset_spikingjelly(module: nn.Module) -> None:
    from spikingjelly.activation_based import functional

    functional.reset_net(module)


# -- the workloads --


def _run(forward: Callable[[Tensor], Tensor], x: Tensor, grad: Tensor, pass_: str) -> Callable[[], None]:
    """One call of a workload: ``forward`` on a fresh leaf view of ``x`` that requires a gradient (the graph
    is built, as in training), then, for forward+backward, the backward from ``grad``."""

    def call() -> None:
        leaf = x.detach().requires_grad_()
        y = forward(leaf)
        if pass_ == "forward+backward":
            y.backward(grad)

    return call


def _row(part: str, workload: str, shape: str, pass_: str, implementation: str, path: str, timing: Timing):
    return {
        "part": part,
        "workload": workload,
        "shape": shape,
        "pass": pass_,
        "implementation": implementation,
        "path": path,
        "median_s": timing.median,
        "min_s": timing.min,
        "max_s": timing.max,
        "times_s": ";".join(repr(t) for t in timing.times),
        "peak_rss_mb": "" if timing.peak_rss_bytes is None else timing.peak_rss_bytes / 1e6,
        "peak_rss_status": timing.peak_rss_status,
    }


def _in_kernel(kernel: str | None, call: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with _kernel(kernel):
            call()

    return run


def _measure_all(
    candidates: Sequence[tuple[str, str, str | None, Callable[[str], Callable[[], None]]]],
    settings: BenchSettings,
    log: Callable[[str], None],
    label: str,
    passes: Sequence[str] = PASSES,
) -> Iterator[tuple[str, str, str, Timing]]:
    """Measure the candidates ``(implementation, path, kernel, make_call)`` against each other
    (:func:`measure_interleaved`) in each of ``passes``."""
    for pass_ in passes:
        calls = {name: _in_kernel(kernel, make(pass_)) for name, _, kernel, make in candidates}
        timings = measure_interleaved(
            calls, repeats=settings.repeats, warmup=settings.warmup, memory=settings.memory
        )
        for implementation, path, _, _ in candidates:
            timing = timings[implementation]
            runs = " ".join(f"{t * 1e3:.0f}" for t in timing.times)
            peak = "-" if timing.peak_rss_bytes is None else f"{timing.peak_rss_bytes / 1e6:.0f} MB"
            median = f"{timing.median * 1e3:.1f} ms"
            log(f"{label}, {pass_}, {implementation}: median {median} ({runs}); peak {peak}")
            yield pass_, implementation, path, timing
        del calls, timings
        gc.collect()


def layer_rows(settings: BenchSettings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Part (a), the LIF layer alone on ``settings.lif_shape`` (``[T, B, ...]``)."""
    torch.manual_seed(settings.seed)
    args = (settings.lif_alpha, settings.lif_theta, settings.surrogate)
    x_time = torch.randn(settings.lif_shape)
    grad_time = torch.rand(settings.lif_shape)
    x_batch, grad_batch = x_time.transpose(0, 1).contiguous(), grad_time.transpose(0, 1).contiguous()
    lif, node, leaky = bidl_lif(*args), spikingjelly_lif(*args), snntorch_leaky(*args)

    def sj_forward(x: Tensor) -> Tensor:
        _reset_spikingjelly(node)
        return node(x)

    candidates = [
        (name, path, kernel, lambda p: _run(lif, x_batch, grad_batch, p))
        for name, kernel, path in bidl_paths()
    ]
    candidates += [
        (
            f"SpikingJelly {peer_version('spikingjelly')}",
            "LIFNode multi-step, sj_lif torch op",
            None,
            lambda p: _run(sj_forward, x_time, grad_time, p),
        ),
        (
            f"snnTorch {peer_version('snntorch')}",
            "Leaky, Python loop over T",
            None,
            lambda p: _run(lambda x: snntorch_sequence(leaky, x), x_time, grad_time, p),
        ),
    ]
    shape = f"{list(settings.lif_shape)} (T, B, ...)"
    numel = x_time.numel()
    rows = []
    for pass_, implementation, path, timing in _measure_all(candidates, settings, log, "LIF layer"):
        row = _row("a", "LIF layer", shape, pass_, implementation, path, timing)
        rows.append({**row, "floor_bytes": lif_floor_bytes(numel, pass_), "lif_part_s": timing.median})
    return rows


def bidl_bn_lif(alpha: float, theta: float, surrogate: str, channels: int, spatial_dims: int, noise: float):
    """bidl's LIF with BatchNorm on its membrane (``BatchNorm2d`` for ``[.., C, H, W]`` states,
    ``BatchNorm1d`` otherwise) and training noise ``noise``, in training mode (each step's batch
    statistics)."""
    from ..neurons import LIF

    norm = nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm1d(channels)
    return LIF(alpha=alpha, theta=theta, surrogate=surrogate, norm=norm, noise=noise).train()


def bn_layer_rows(settings: BenchSettings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Part (a), the LIF layer with BatchNorm on its membrane on ``settings.lif_bn_shape``
    (``[T, B, C, ...]``), in training mode: bidl's default path against its reference step loop (the
    specification, and what the authors' ``Lif`` with ``norm_state`` runs). Neither SpikingJelly's LIFNode
    nor snnTorch's Leaky has a BatchNorm on the membrane (SpikingJelly 2.0 fuses charge, fire and reset in
    one step function), so there is no peer row; the DVS128 training step in the paper's configuration
    (part b) sets bidl's network against the one SpikingJelly users build instead. No rows where the shape
    is not configured."""
    if settings.lif_bn_shape is None:
        return []
    shape = settings.lif_bn_shape
    torch.manual_seed(settings.seed)
    x_time = torch.randn(shape)
    grad_time = torch.rand(shape)
    x_batch, grad_batch = x_time.transpose(0, 1).contiguous(), grad_time.transpose(0, 1).contiguous()
    lif = bidl_bn_lif(
        settings.lif_alpha, settings.lif_theta, settings.surrogate, shape[2], len(shape) - 3,
        settings.lif_bn_noise,
    )  # fmt: skip

    def seeded(p: str) -> Callable[[], None]:  # the same noise in every call
        call = _run(lif, x_batch, grad_batch, p)

        def run() -> None:
            torch.manual_seed(settings.seed)
            call()

        return run

    candidates = [(name, path, kernel, seeded) for name, kernel, path in bidl_paths()]
    workload = "LIF layer, BatchNorm on the membrane" + (
        f", noise {settings.lif_bn_noise:g}" if settings.lif_bn_noise else ""
    )
    label = f"{list(shape)} (T, B, C, ...)"
    rows = []
    for pass_, implementation, path, timing in _measure_all(candidates, settings, log, workload):
        row = _row("a", workload, label, pass_, implementation, path, timing)
        rows.append(
            {**row, "floor_bytes": lif_floor_bytes(x_time.numel(), pass_), "lif_part_s": timing.median}
        )
    return rows


def linear_lif_rows(settings: BenchSettings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Part (a), the Open Neuromorphic workload: Linear ``n -> n`` then LIF on ``[T, B, n]`` for each ``n``.

    Every implementation applies the Linear to the whole sequence at once (one ``[T*B, n] x [n, n]`` GEMM,
    the same weights), so they differ in the neuron only; the Linear alone (``torch.nn.Linear``) is measured
    too, and ``lif_part_s`` = an implementation's median less the Linear's median, the time the bandwidth
    floor of the LIF is compared with (the GEMM is bound by arithmetic, not memory)."""
    rows = []
    args = (settings.linear_alpha, settings.linear_theta, settings.surrogate)
    t, b = settings.linear_timesteps, settings.linear_batch_size
    for n in settings.linear_neurons:
        torch.manual_seed(settings.seed)
        from ..layers import FCLIF

        block = FCLIF(n, n, norm=None, alpha=args[0], theta=args[1], surrogate=args[2])
        linear = nn.Linear(n, n)
        linear.load_state_dict(block.synapse.state_dict())
        sj_linear = copy.deepcopy(linear)
        node, leaky = spikingjelly_lif(*args), snntorch_leaky(*args)
        x_time, grad_time = torch.rand(t, b, n), torch.rand(t, b, n)
        x_batch, grad_batch = x_time.transpose(0, 1).contiguous(), grad_time.transpose(0, 1).contiguous()

        def sj_forward(x: Tensor, node=node, sj_linear=sj_linear) -> Tensor:
            _reset_spikingjelly(node)
            return node(sj_linear(x))

        def snn_forward(x: Tensor, leaky=leaky, linear=linear) -> Tensor:
            return snntorch_sequence(leaky, linear(x))

        candidates = [
            (
                "torch Linear alone",
                "nn.Linear on [T*B, n]",
                None,
                lambda p, linear=linear, x=x_time, g=grad_time: _run(linear, x, g, p),
            ),
        ]
        candidates += [
            (name, path, kernel, lambda p, block=block, x=x_batch, g=grad_batch: _run(block, x, g, p))
            for name, kernel, path in bidl_paths()
        ]
        candidates += [
            (
                f"SpikingJelly {peer_version('spikingjelly')}",
                "Linear + LIFNode multi-step, sj_lif torch op",
                None,
                lambda p, f=sj_forward, x=x_time, g=grad_time: _run(f, x, g, p),
            ),
            (
                f"snnTorch {peer_version('snntorch')}",
                "Linear + Leaky, Python loop over T",
                None,
                lambda p, f=snn_forward, x=x_time, g=grad_time: _run(f, x, g, p),
            ),
        ]
        linear_median = {}
        measured = list(_measure_all(candidates, settings, log, f"Linear+LIF n={n}"))
        for pass_, implementation, _, timing in measured:
            if implementation == "torch Linear alone":
                linear_median[pass_] = timing.median
        for pass_, implementation, path, timing in measured:
            row = _row(
                "a", f"Linear+LIF n={n}", f"[{t}, {b}, {n}] (T, B, n)", pass_, implementation, path, timing
            )
            if implementation == "torch Linear alone":
                rows.append({**row, "floor_bytes": "", "lif_part_s": ""})
            else:
                rows.append(
                    {
                        **row,
                        "floor_bytes": lif_floor_bytes(t * b * n, pass_),
                        "lif_part_s": timing.median - linear_median[pass_],
                    }
                )
        del x_time, grad_time, x_batch, grad_batch
        gc.collect()
    return rows


# -- the DVS128 network built from SpikingJelly layers --


def _spikingjelly_node_of(neuron: nn.Module, surrogate: str) -> nn.Module:
    """The SpikingJelly ``LIFNode`` computing what bidl's ``neuron`` computes; ``ValueError`` naming what a
    LIFNode cannot express (learned or per-channel parameters, BatchNorm on the membrane, training noise,
    soft reset, beta or v_reset other than 0, LIAF / LIF+)."""
    from ..neurons import LIF

    problems = []
    if type(neuron) is not LIF:
        problems.append(f"a {type(neuron).__name__} neuron (only LIF)")
    if neuron.learnable or neuron.sharing != "all":
        problems.append("learned or per-channel neuron parameters (learnable: false, sharing: all)")
    if neuron.norm is not None:
        problems.append("BatchNorm on the membrane (norm: input or null)")
    if neuron.noise:
        problems.append("training noise (noise: 0)")
    beta, v_reset = (float(getattr(neuron, name).detach().max().abs()) for name in ("beta", "v_reset"))
    if neuron.reset != "hard" or beta != 0.0 or v_reset != 0.0:
        problems.append("a soft reset, beta or v_reset other than 0")
    alpha = float(neuron.alpha.detach().flatten()[0])
    if not 0.0 < alpha < 1.0:
        problems.append(f"alpha {alpha} outside (0, 1)")
    if problems:
        raise ValueError(f"SpikingJelly's LIFNode cannot compute this bidl neuron: {'; '.join(problems)}")
    return spikingjelly_lif(alpha, float(neuron.theta.detach().flatten()[0]), surrogate)


class SpikingJellyDVS128(nn.Module):
    """bidl's DVS128 Gesture network (:class:`~bidl.models.dvs128.DVS128GestureNet` with ``norm="input"``)
    rebuilt from SpikingJelly layers, with its weights and BatchNorm statistics copied in: input BatchNorm,
    three ``Conv2d -> BatchNorm2d -> LIFNode`` blocks, ``Flatten``, two ``Linear -> BatchNorm1d -> LIFNode``
    blocks, mean over T. Input ``[T, B, 2, H, W]`` (time-first, SpikingJelly's layout); output
    ``[B, n_classes]``, what bidl's network gives on the same input ``[B, T, 2, H, W]``.

    Its LIFNodes use SpikingJelly's surrogate ``surrogate`` (the bidl network should use the same one)."""

    def __init__(self, net: nn.Module, surrogate: str = "sigmoid"):
        super().__init__()
        require_peer("spikingjelly")
        from spikingjelly.activation_based import layer

        if not isinstance(net.readout, nn.Identity) or net.aggregate.mode != "mean":
            raise ValueError("SpikingJellyDVS128: only the mean-rate readout of the DVS128 network")
        modules: list[nn.Module] = [_copy_into(layer.BatchNorm2d, net.input_norm.module)]
        for name in ("conv1", "conv2", "conv3", "fc1", "fc2"):
            block = getattr(net, name)
            if name == "fc1":
                modules.append(layer.Flatten(step_mode="m"))
            node = _spikingjelly_node_of(block.neuron, surrogate)
            if block.pool is not None or block.input_norm is None:
                raise ValueError(
                    f"SpikingJellyDVS128: {name} must have BatchNorm on its input and no pooling"
                )
            synapse_cls = layer.Conv2d if isinstance(block.synapse, nn.Conv2d) else layer.Linear
            norm_cls = (
                layer.BatchNorm2d if isinstance(block.input_norm, nn.BatchNorm2d) else layer.BatchNorm1d
            )
            modules += [
                _copy_into(synapse_cls, block.synapse),
                _copy_into(norm_cls, block.input_norm),
                node,
            ]
        self.body = nn.Sequential(*modules)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(0)


def _copy_into(cls: type[nn.Module], module: nn.Module) -> nn.Module:
    """A SpikingJelly multi-step layer ``cls`` with the constructor arguments, weights and buffers of the
    torch layer ``module`` (Conv2d, Linear, BatchNorm1d / 2d)."""
    if isinstance(module, nn.Conv2d):
        new = cls(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            step_mode="m",
        )
    elif isinstance(module, nn.Linear):
        new = cls(module.in_features, module.out_features, bias=module.bias is not None, step_mode="m")
    else:
        new = cls(module.num_features, eps=module.eps, momentum=module.momentum, step_mode="m")
    new.load_state_dict(module.state_dict())
    return new


def _dvs128_kwargs(experiment: Mapping[str, Any], settings: BenchSettings, paper: bool) -> dict[str, Any]:
    """The DVS128 network's keywords: the experiment's ``model_kwargs``, then the bench's
    ``dvs128.model_kwargs`` (as trained) or ``dvs128.paper_model_kwargs`` (the paper's configuration), then
    the bench's surrogate."""
    overrides = settings.dvs128_paper_model_kwargs if paper else settings.dvs128_model_kwargs
    return {
        **experiment.get("model_kwargs", {}),
        **(overrides or {}),
        "surrogate": settings.surrogate,
        "surrogate_scale": None,  # bidl's default scale, SpikingJelly's (SURROGATES)
    }


def dvs128_networks(
    experiment: Mapping[str, Any], settings: BenchSettings, *, paper: bool = False
) -> tuple[nn.Module, nn.Module, bool]:
    """bidl's network of the DVS128 ``experiment`` (:func:`_dvs128_kwargs`) and the network built from
    SpikingJelly layers with the same synapse weights, and whether the two compute the same function.

    Where bidl's network has BatchNorm on the membrane (which SpikingJelly's LIFNode cannot hold), the
    SpikingJelly network is the one its users build: BatchNorm on the synaptic current, from a bidl twin with
    ``norm="input"`` and the same seed (so the same conv and linear weights); the third value is then
    ``False``. Anything else SpikingJelly cannot express raises :class:`ConfigError` naming the key."""
    from ..models.registry import create_model

    kwargs = _dvs128_kwargs(experiment, settings, paper)
    torch.manual_seed(settings.seed)
    net = create_model(experiment["model"], **kwargs)
    same = kwargs.get("norm") != "state"
    twin = net
    if not same:  # the membrane's BatchNorm moved onto the synaptic current; the same seed, the same weights
        torch.manual_seed(settings.seed)
        twin = create_model(experiment["model"], **{**kwargs, "norm": "input", "noise": 0.0})
    key = "paper_model_kwargs" if paper else "model_kwargs"
    try:
        return net, SpikingJellyDVS128(twin, settings.surrogate), same
    except ValueError as err:
        raise ConfigError(
            f"bench.dvs128.{key}: the network of experiment {settings.dvs128_experiment!r} cannot be "
            f"built from SpikingJelly layers ({err}); override those keywords for the bench"
        ) from None


def _describe_kwargs(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in kwargs.items()) or "as the experiment"


def dvs128_rows(
    experiment: Mapping[str, Any],
    input_shape: Sequence[int],
    settings: BenchSettings,
    log: Callable[[str], None] = print,
    *,
    paper: bool = False,
) -> list[dict[str, Any]]:
    """Part (b): one training step (forward, cross-entropy, backward, optimiser step with the experiment's
    recipe) of bidl's DVS128 network and of :class:`SpikingJellyDVS128`, on random spike-like frames
    ``input_shape = [B, T, C, H, W]`` (a fraction ``dvs128.input_density`` of ones) and random labels.
    ``paper``: the network in the paper's own configuration (``dvs128.paper_model_kwargs``; no rows where
    that is null), against the SpikingJelly network :func:`dvs128_networks` builds for it."""
    from ..state import reset_states
    from ..training import Recipe, make_optimizer

    if paper and settings.dvs128_paper_model_kwargs is None:
        return []
    recipe = Recipe.from_mapping(
        experiment["recipe"], where=f"experiments.{settings.dvs128_experiment}.recipe"
    )
    net, sj_net, same = dvs128_networks(experiment, settings, paper=paper)
    b, t = input_shape[:2]
    generator = torch.Generator().manual_seed(settings.seed)
    frames = (torch.rand(tuple(input_shape), generator=generator) < settings.dvs128_input_density).float()
    frames_time = frames.transpose(0, 1).contiguous()
    n_classes = net.fc2.synapse.out_features
    labels = torch.randint(0, n_classes, (b,), generator=generator)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def step_of(model: nn.Module, x: Tensor, reset: Callable[[nn.Module], None]) -> Callable[[str], Any]:
        optimizer = make_optimizer(model, recipe)
        model.train()

        def step() -> None:
            torch.manual_seed(settings.seed)  # the same training noise in every call
            reset(model)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), labels)
            loss.backward()
            optimizer.step()

        return lambda _pass: step

    candidates = [
        (name, path, kernel, step_of(net, frames, reset_states)) for name, kernel, path in bidl_paths()
    ]
    sj_path = "layer.* + LIFNode multi-step, sj_lif torch op"
    if not same:
        sj_path += ", BatchNorm on the synaptic current (LIFNode has none on the membrane)"
    candidates.append(
        (
            f"SpikingJelly {peer_version('spikingjelly')}",
            sj_path,
            None,
            step_of(sj_net, frames_time, _reset_spikingjelly),
        )
    )
    shape = f"{list(input_shape)} (B, T, C, H, W)"
    workload = f"DVS128 training step ({settings.dvs128_experiment})"
    if paper:
        workload = (
            f"DVS128 training step ({settings.dvs128_experiment}, paper configuration: "
            f"{_describe_kwargs(settings.dvs128_paper_model_kwargs)})"
        )
    rows = []
    measured = _measure_all(candidates, settings, log, workload, passes=("training step",))
    for _, implementation, path, timing in measured:
        row = _row("b", workload, shape, "training step", implementation, path, timing)
        rows.append({**row, "floor_bytes": "", "lif_part_s": ""})
    return rows


# -- batch-1 streaming (EIM) against ONNX Runtime --


def eim_rows(
    experiment: Mapping[str, Any],
    input_shape: Sequence[int],
    settings: BenchSettings,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Part (d): batch-1 EIM streaming of the DVS128 network (as part (b) builds it, in eval mode) over one
    random sequence of ``T`` frames ``[1, C, H, W]``: bidl's modules stepped eagerly, bidl's compiled
    single-step graph (:func:`bidl.stream.compile_stream`) and the exported ONNX step graph in ONNX Runtime
    (:class:`bidl.export.runtime.StepRuntime`, the same threads). Each repeat streams the sequence from a
    reset once per implementation (round-robin) and times every step, as :func:`bidl.latency.measure_latency`
    does; a repeat's figure is its median step, and the rows give the median, min and max over the
    repeats, and the peak memory of one more stream of each."""
    from ..export.onnx import export_onnx
    from ..export.runtime import StepRuntime
    from ..state import iteration_mode, reset_states
    from ..stream import compile_stream

    net = dvs128_networks(experiment, settings)[0].eval()
    t = input_shape[1]
    generator = torch.Generator().manual_seed(settings.seed)
    frames = (torch.rand((1, *input_shape[1:]), generator=generator) < settings.dvs128_input_density).float()
    runtime = StepRuntime(export_onnx(net, frames[:, 0]), threads=torch.get_num_threads())
    stream = compile_stream(net, frames[:, 0])

    def eager(frame: Tensor) -> None:
        net(frame)

    def ort(frame: Tensor) -> None:
        runtime.step(frame.numpy())

    import onnxruntime

    candidates = {  # implementation -> (path, reset, step)
        "bidl": ("compiled single-step graph (TorchScript, frozen)", stream.reset, stream.step),
        "bidl (eager EIM)": ("the modules called once per step", lambda: reset_states(net), eager),
        f"ONNX Runtime {onnxruntime.__version__}": (
            "the exported step graph, CPU provider", lambda: runtime.reset(1), ort,
        ),
    }  # fmt: skip

    def stream_steps(reset: Callable[[], Any], step: Callable[[Tensor], Any]) -> list[float]:
        reset()
        times = []
        for k in range(t):
            frame = frames[:, k]
            began = time.perf_counter()
            step(frame)
            times.append(time.perf_counter() - began)
        return times

    per_repeat: dict[str, list[float]] = {name: [] for name in candidates}
    with iteration_mode(net, "external"), torch.no_grad():
        for _, reset, step in candidates.values():
            for _ in range(settings.warmup):
                stream_steps(reset, step)
        for _ in range(settings.repeats):  # round-robin, as measure_interleaved
            for name, (_, reset, step) in candidates.items():
                gc.collect()
                per_repeat[name].append(statistics.median(stream_steps(reset, step)))
        peaks = {  # one more stream of each: the growth of the resident set
            name: peak_rss(lambda reset=reset, step=step: stream_steps(reset, step))
            if settings.memory
            else (None, "not measured")
            for name, (_, reset, step) in candidates.items()
        }
        reset_states(net)
    shape = f"{[1, *input_shape[2:]]} per step, {t} steps"
    workload = f"DVS128 EIM step, batch 1 ({settings.dvs128_experiment})"
    rows = []
    for name, (path, _, _) in candidates.items():
        timing = Timing(tuple(per_repeat[name]), *peaks[name])
        log(f"{workload}, {name}: median step {timing.median * 1e3:.3f} ms")
        row = _row("d", workload, shape, "EIM step", name, path, timing)
        rows.append({**row, "floor_bytes": "", "lif_part_s": ""})
    return rows


# -- all parts --


COLUMNS = (
    "part",
    "workload",
    "shape",
    "pass",
    "implementation",
    "path",
    "surrogate",
    "threads",
    "repeats",
    "median_s",
    "min_s",
    "max_s",
    "times_s",
    "peak_rss_mb",
    "peak_rss_status",
    "floor_bytes",
    "floor_counts",
    "floor_s",
    "lif_part_s",
    "ratio_to_floor",
)
"""The columns of the measurement file ``bench.csv``: one row per workload, pass and implementation."""


def bench_setup(config: Mapping[str, Any]) -> tuple[BenchSettings, dict[str, Any], list[int]]:
    """The bench of a pipeline ``config``: its settings (the ``bench`` section), the DVS128 experiment it
    times (``bench.dvs128.experiment``) and that experiment's input ``[B, T, 2, H, W]`` (the recipe's batch
    size, the dataset's ``n_frames`` and ``size``). Errors name the key at fault."""
    settings = BenchSettings.from_mapping(config.get("bench"))
    experiment = config["experiments"][settings.dvs128_experiment]  # the config's validation checked it
    preprocess = config["datasets"]["dvs128_gesture"]["preprocess"]
    shape = [
        experiment["recipe"]["batch_size"],
        preprocess["n_frames"],
        2,
        preprocess["size"],
        preprocess["size"],
    ]
    return settings, dict(experiment), shape


def run_bench(
    settings: BenchSettings,
    experiment: Mapping[str, Any],
    dvs128_input_shape: Sequence[int],
    *,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run parts (a), (b), (c) and (d); return the rows of ``bench.csv`` (:data:`COLUMNS`) and the environment
    record (versions, threads, CPU, the copy bandwidth). Torch runs ``settings.threads`` threads, else
    ``threads``, else its current count."""
    for name in PEERS:  # fail before measuring anything
        require_peer(name)
    set_threads(settings.threads or threads or torch.get_num_threads())
    load_before = _load_average()
    bandwidth = copy_bandwidth(settings.copy_mb, repeats=settings.repeats, warmup=settings.warmup)
    log(f"copy bandwidth {bandwidth['bytes_per_s'] / 1e9:.2f} GB/s (read + write, {settings.copy_mb} MB)")
    rows = [
        *layer_rows(settings, log),
        *bn_layer_rows(settings, log),
        *linear_lif_rows(settings, log),
        *dvs128_rows(experiment, dvs128_input_shape, settings, log),
        *dvs128_rows(experiment, dvs128_input_shape, settings, log, paper=True),
        *eim_rows(experiment, dvs128_input_shape, settings, log),
    ]
    copy_timing = Timing(tuple(bandwidth["times_s"]), None, "not measured (copy)")
    copy_row = _row(
        "c",
        "memory copy (bandwidth)",
        f"[{bandwidth['copy_mb'] * 250_000}] float32",
        "copy",
        "torch Tensor.copy_",
        f"{bandwidth['bytes_per_s'] / 1e9:.3f} GB/s (read + write)",
        copy_timing,
    )
    rows.append({**copy_row, "floor_bytes": bandwidth["bytes_moved"], "lif_part_s": copy_timing.median})
    for row in rows:
        row["surrogate"] = settings.surrogate if row["part"] != "c" else ""
        row["threads"] = torch.get_num_threads()
        row["repeats"] = settings.repeats
        if row["floor_bytes"] == "":
            row.update(floor_counts="", floor_s="", ratio_to_floor="")
            continue
        floor = floor_seconds(row["floor_bytes"], bandwidth["bytes_per_s"])
        row["floor_counts"] = FLOOR_COUNTS.get(row["pass"], "read + write of the copy")
        row["floor_s"] = floor
        row["ratio_to_floor"] = row["lif_part_s"] / floor if row["lif_part_s"] > 0 else ""
    env = environment()  # after the runs: numba's threads as bidl launched them
    env.update(
        load_average={"before": load_before, "after": _load_average()},
        bandwidth=bandwidth,
        settings={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(settings).items()},
        bidl_default_path=bidl_paths()[0][2],
    )
    return [{c: row.get(c, "") for c in COLUMNS} for row in rows], env


# -- the table --


def _number(value: str | float | None) -> float | None:
    return float(value) if value not in ("", None) else None


def _peer_family(implementation: str) -> str | None:
    """``"SpikingJelly"`` / ``"snnTorch"`` / ``"bidl (reference step loop)"`` / ``"bidl (eager EIM)"`` /
    ``"ONNX Runtime"`` for the rows bidl's default path is compared with, else ``None``."""
    for family in (
        "SpikingJelly",
        "snnTorch",
        "bidl (reference step loop)",
        "bidl (eager EIM)",
        "ONNX Runtime",
    ):
        if implementation.startswith(family):
            return family
    return None


def speedups(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], float]:
    """``(workload, pass, peer) -> peer median / bidl median``: how many times bidl's default path is faster
    than each peer (and than bidl's reference step loop) in the same run; peers as :func:`_peer_family`
    names them.

    Example:
        >>> row = {"workload": "w", "pass": "forward"}
        >>> rows = [{**row, "implementation": "bidl", "median_s": "0.1"},
        ...         {**row, "implementation": "SpikingJelly 2.0.0", "median_s": "0.3"}]
        >>> {k: round(v, 6) for k, v in speedups(rows).items()}
        {('w', 'forward', 'SpikingJelly'): 3.0}
    """
    bidl = {(r["workload"], r["pass"]): float(r["median_s"]) for r in rows if r["implementation"] == "bidl"}
    ratios = {}
    for r in rows:
        family, base = _peer_family(r["implementation"]), bidl.get((r["workload"], r["pass"]))
        if family is not None and base is not None:
            ratios[(r["workload"], r["pass"], family)] = float(r["median_s"]) / base
    return ratios


SUMMARY_COLUMNS = (
    "part",
    "workload",
    "shape",
    "pass",
    "implementation",
    "path",
    "median ms",
    "min ms",
    "max ms",
    "peak MB",
    "LIF part ms",
    "floor ms",
    "x floor",
    "bidl faster by",
)
"""The columns of the rendered table ``tables/bench.*``."""


def summary_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The rendered table's rows from the measurement file's rows (as read from ``bench.csv``): each
    implementation's median, min and max (ms), peak memory, the LIF part's time and its bandwidth floor (ms)
    and their ratio, and for each peer how many times bidl's default path is faster (:func:`speedups`)."""
    ratios = speedups(rows)

    def ms(value: Any) -> str:  # three decimals below a millisecond (a batch-1 step), else one
        number = _number(value)
        if number is None:
            return "-"
        return f"{number * 1e3:.3f}" if number < 1e-3 else f"{number * 1e3:.1f}"

    table = []
    for r in rows:
        family = _peer_family(r["implementation"])
        ratio, floor_ratio = ratios.get((r["workload"], r["pass"], family)), _number(r["ratio_to_floor"])
        peak = _number(r["peak_rss_mb"])
        table.append(
            {
                "part": r["part"],
                "workload": r["workload"],
                "shape": r["shape"],
                "pass": r["pass"],
                "implementation": r["implementation"],
                "path": r["path"],
                "median ms": ms(r["median_s"]),
                "min ms": ms(r["min_s"]),
                "max ms": ms(r["max_s"]),
                "peak MB": "-" if peak is None else f"{peak:.0f}",
                "LIF part ms": ms(r["lif_part_s"]) if r["workload"].startswith("Linear+LIF") else "-",
                "floor ms": ms(r["floor_s"]),
                "x floor": "-" if floor_ratio is None else f"{floor_ratio:.1f}x",
                "bidl faster by": "-" if ratio is None else f"{ratio:.2f}x",
            }
        )
    return table
