"""A compiled single-step (EIM) network for fast streaming inference at small batch sizes.

In EIM a network runs one timestep per call and keeps its state in its modules (:mod:`bidl.state`). At batch
1 the tensors are small, and most of a step's time goes to Python: every module's ``forward``, the neuron
step functions, the state bookkeeping, for a few microseconds of arithmetic each. :func:`compile_stream`
removes that per-call overhead: it turns the network into a pure function of one step,
``step(x, *states) -> (y, *next_states)`` (the states those of :func:`bidl.export.state_specs`: membranes,
aggregation accumulators and step counts, LIF+ variables, LSTM ``h`` / ``c``, Conv3D frames), traces it with
:func:`torch.jit.trace` and freezes it with :func:`torch.jit.freeze`, so that a step is one call into
TorchScript's interpreter. :class:`CompiledStream` holds the states between calls.

The neurons are traced in their inference form (:func:`bidl.functional.inference_builtins`), with operators
that give the same values as the training path's step, element for element (:data:`STREAM_OPS`):

- fire: ``spike = 1[u > theta]``, written straight into a tensor of ``u``'s dtype;
- hard reset and leak: ``alpha * lerp(u, v_reset, spike) + beta``; ``lerp`` with a weight of 0 or 1 returns
  exactly ``u`` or ``v_reset``, so this equals ``alpha * (spike v_reset + (1 - spike) u) + beta``; the
  multiplication by an ``alpha`` of 1 and the addition of a ``beta`` of 0 are left out (they change at most
  the sign of a zero);
- soft reset and leak: ``alpha * (u - spike * theta) + beta`` (``spike * theta`` is exact).

Every other operation is the network's own, in the same order, and freezing runs no pass that changes
numerics (no BatchNorm folding, no fusion of element-wise operations), so the compiled stream computes
the same values as the network in EIM: :func:`compile_stream` checks its outputs and states against the
network's on two steps of the example before it returns.

Limits:

- inference only: the network must be in eval mode, with no active plasticity rule; no gradients;
- shapes are fixed at compile time: every frame must have the example's shape, dtype and device (another
  batch size needs another compile);
- the weights, buffers and neuron parameters are frozen at compile time (a copy of the network is traced):
  later changes to the network do not reach the compiled stream;
- the network's Python control flow is fixed by the trace: a branch that depends on tensor values, or a
  state held outside :meth:`~bidl.state.StatefulModule.get_state`, is not followed (the check at compile
  time catches what shows on the example: it compares within a small tolerance, to find a wrong trace; the
  tests check the values bit for bit);
- it relies on TorchScript, which PyTorch 2.x marks deprecated (``compile_stream`` silences those warnings):
  ``torch.compile`` costs more per call than it saves at this size.

Example:
    >>> import torch
    >>> from bidl.models import create_model
    >>> net = create_model("dvs128_gesture", channels=(4, 4, 4), hidden=8, height=16, width=16).eval()
    >>> stream = compile_stream(net, torch.zeros(1, 2, 16, 16))
    >>> stream.step(torch.rand(1, 2, 16, 16)).shape
    torch.Size([1, 11])
    >>> stream.run(torch.rand(1, 5, 2, 16, 16)).shape  # every step's output, from reset states
    torch.Size([1, 5, 11])
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from .errors import BidlError
from .export.states import StateSpec, state_specs
from .functional import inference_builtins
from .plasticity import Plasticity
from .state import SpatioTemporalModule, iteration_mode, reset_states

__all__ = ["STREAM_OPS", "CompiledStream", "StreamError", "StreamStates", "compile_stream"]


class StreamError(BidlError, ValueError):
    """A network that :func:`compile_stream` cannot compile; the message names the module at fault."""


# -- the neuron built-ins in plain torch ops ---------------------------------------------------------------


def _is_constant(value: Tensor | float, constant: float) -> bool:
    """Whether every element of a neuron parameter equals ``constant`` (read at trace time: the parameters
    are frozen into the graph)."""
    if isinstance(value, Tensor):
        return bool((value == constant).all())
    return value == constant


def _leak(r: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
    """``alpha * r + beta`` on a fresh tensor ``r`` (in place where the result keeps ``r``'s dtype), without
    the multiplication by an alpha of 1 or the addition of a beta of 0."""
    in_place = torch.result_type(r, alpha) == r.dtype and torch.result_type(r, beta) == r.dtype
    if not _is_constant(alpha, 1.0):
        r = r.mul_(alpha) if in_place else alpha * r
    if not _is_constant(beta, 0.0):
        r = r.add_(beta) if in_place else r + beta
    return r


def _cmp_and_fire(v: Tensor, theta: Tensor | float) -> Tensor:
    """``1[v > theta]`` in ``v``'s dtype, written by the comparison itself (no separate cast)."""
    return torch.gt(v, theta, out=torch.empty_like(v))


def _reset_with_decay(
    v: Tensor, spike: Tensor, v_reset: Tensor | float, alpha: Tensor | float, beta: Tensor | float
) -> Tensor:
    """Hard reset and leak, ``alpha * (spike ? v_reset : v) + beta``; ``lerp`` with weight 0 or 1 is exact."""
    if not isinstance(v_reset, Tensor) or v_reset.dtype != v.dtype:
        v_reset = torch.as_tensor(v_reset, dtype=v.dtype, device=v.device)
    return _leak(torch.lerp(v, v_reset, spike), alpha, beta)


def _soft_reset_with_decay(
    v: Tensor, spike: Tensor, theta: Tensor | float, alpha: Tensor | float, beta: Tensor | float
) -> Tensor:
    """Soft (RMP) reset and leak, ``alpha * (v - spike * theta) + beta``."""
    return _leak(v - spike * theta, alpha, beta)


STREAM_OPS = SimpleNamespace(
    cmp_and_fire=_cmp_and_fire,
    reset_with_decay=_reset_with_decay,
    soft_reset_with_decay=_soft_reset_with_decay,
)
"""The neuron built-ins a compiled stream is traced with (for :func:`bidl.functional.inference_builtins`):
plain torch operations, equal element for element to the training path's step."""


# -- the step as a pure function ---------------------------------------------------------------------------


class _Step(nn.Module):
    """``network`` as a pure function of one step: ``forward(x, *states) -> (y, *next_states)``, the states
    in the order of ``specs``; the network's own held states are reset afterwards."""

    def __init__(self, network: nn.Module, specs: list[StateSpec]):
        super().__init__()
        self.network = network
        self.specs = list(specs)

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        modules = dict(self.network.named_modules())
        loaded: dict[str, dict[str, Tensor]] = {}
        for spec, state in zip(self.specs, states, strict=True):
            loaded.setdefault(spec.module, {})[spec.name] = state
        for path, values in loaded.items():
            modules[path].set_state(values)
        y = self.network(x)
        if not isinstance(y, Tensor):
            raise StreamError(
                f"{type(self.network).__name__}: returns {type(y).__name__}; a compiled stream needs a "
                "network whose step returns one tensor"
            )
        saved = [modules[spec.module].get_state()[spec.name] for spec in self.specs]
        reset_states(self.network)
        return (y, *saved)


def _check_inference(network: nn.Module) -> None:
    """Refuse a network that a frozen inference graph cannot run: a module in training mode or an active
    plasticity rule; and one with no bidl module (no EIM to compile)."""
    if not any(isinstance(m, SpatioTemporalModule) for m in network.modules()):
        raise StreamError(
            f"{type(network).__name__}: holds no bidl module (SpatioTemporalModule), so it has no "
            "single-step (EIM) form to compile"
        )
    for path, module in network.named_modules():
        if isinstance(module, Plasticity) and module.active:
            raise StreamError(
                f"{path}: an active plasticity rule ({module.rule_name}) updates its weights every step; a "
                f"compiled stream runs inference only: set {path}.active = False"
            )
    for path, module in network.named_modules():
        if module.training:
            raise StreamError(
                f"{path or type(network).__name__}: is in training mode; a compiled stream runs inference "
                "only: call network.eval()"
            )


@contextmanager
def _module_tracker(network: nn.Module) -> Iterator[list[str]]:
    """The paths of the modules entered so far in a forward pass (the last one is where a failure was)."""
    entered: list[str] = []
    hooks = [
        module.register_forward_pre_hook(lambda _m, _a, path=path: entered.append(path))
        for path, module in network.named_modules()
    ]
    try:
        yield entered
    finally:
        for hook in hooks:
            hook.remove()


def _fusion_possible(device: torch.device) -> bool:
    """Whether TorchScript's fusers could fuse element-wise operations on ``device`` (fused kernels may
    contract a multiply and an add, which changes the last bit of a membrane)."""
    if device.type == "cuda":
        return torch._C._jit_can_fuse_on_gpu()
    return torch._C._jit_can_fuse_on_cpu() or torch._C._jit_llga_enabled()


def _no_fusion(device: torch.device) -> AbstractContextManager:
    """A context in which TorchScript fuses nothing on ``device`` (a no-op where it would not anyway)."""
    return torch.jit.fuser("none") if _fusion_possible(device) else nullcontext()


def _init_states(specs: list[StateSpec], batch: int, device: torch.device) -> list[Tensor]:
    return [
        torch.full((batch, *s.shape), s.init, dtype=getattr(torch, s.dtype), device=device) for s in specs
    ]


def _state_key(spec: StateSpec) -> str:
    """A state's path: ``<module path>.<name>`` (the name alone for the network's own state)."""
    return f"{spec.module}.{spec.name}" if spec.module else spec.name


# -- the compiled stream -----------------------------------------------------------------------------------


class StreamStates(Mapping):
    """The states of a :class:`CompiledStream` now: keyed by ``<module path>.<name>`` (e.g.
    ``conv1.neuron.v``), and also found by their spec ids (:attr:`StateSpec.id`). The tensors are the
    stream's own: read them, do not modify them in place."""

    def __init__(self, specs: list[StateSpec], values: tuple[Tensor, ...] | list[Tensor]):
        self._index = {_state_key(s): i for i, s in enumerate(specs)}
        self._ids = {s.id: i for i, s in enumerate(specs)}
        self._values = values

    def __getitem__(self, key: str) -> Tensor:
        index = self._index.get(key, self._ids.get(key))
        if index is None:
            raise KeyError(f"{key!r}: no such state; the stream holds {list(self._index)} (or their ids)")
        return self._values[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class CompiledStream:
    """A network compiled for EIM streaming (:func:`compile_stream`): :meth:`step` runs one timestep of a
    batch of frames shaped as the compile example, the states fed back between calls; :meth:`reset` starts a
    new sequence. Build one with :func:`compile_stream`.

    Attributes:
        specs: the states (:class:`~bidl.export.states.StateSpec`), in the order the graph takes them.
        frame_shape: the shape every frame must have, ``[B, ...]``.
        compile_seconds: the time :func:`compile_stream` took (trace, freeze, warm-up, check).
        graph: the frozen TorchScript module, ``forward(x, *states) -> (y, *next_states)``.
    """

    def __init__(
        self,
        graph: torch.jit.ScriptModule,
        specs: list[StateSpec],
        example: Tensor,
        *,
        compile_seconds: float = 0.0,
    ):
        self.graph = graph
        self.specs = list(specs)
        self.frame_shape = tuple(example.shape)
        self.compile_seconds = compile_seconds
        self._shape = example.shape
        self._dtype = example.dtype
        self._device = example.device
        self._forward = graph.forward
        self._buffers = _init_states(self.specs, example.shape[0], example.device)
        self._states: tuple[Tensor, ...] = tuple(self._buffers)
        self._copy_output = False
        self._fusion_possible = _fusion_possible(example.device)

    @property
    def states(self) -> StreamStates:
        """The states now, by ``<module path>.<name>`` or by spec id (read-only)."""
        return StreamStates(self.specs, self._states)

    def reset(self) -> None:
        """Every state back to its initial value (:attr:`StateSpec.init`), in its preallocated tensor."""
        for buffer, spec in zip(self._buffers, self.specs, strict=True):
            buffer.fill_(spec.init)
        self._states = tuple(self._buffers)

    def _refuse_frame(self, frame: Tensor) -> None:
        raise ValueError(
            f"CompiledStream.step: frame of shape {tuple(frame.shape)}, {frame.dtype} on {frame.device}; "
            f"the stream was compiled for {self.frame_shape}, {self._dtype} on {self._device} (compile "
            "another stream for another batch size)"
        )

    def step(self, frame: Tensor) -> Tensor:
        """One timestep: ``frame [B, ...]`` (shaped as the compile example) -> the network's output ``[B,
        ...]``; the states advance. Without gradients."""
        if frame.shape != self._shape or frame.dtype != self._dtype or frame.device != self._device:
            self._refuse_frame(frame)
        if frame.requires_grad:
            frame = frame.detach()
        if self._fusion_possible:
            with _no_fusion(self._device):
                outputs = self._forward(frame, *self._states)
        else:
            outputs = self._forward(frame, *self._states)
        self._states = outputs[1:]
        return outputs[0].clone() if self._copy_output else outputs[0]

    def run(self, sequence: Tensor) -> Tensor:
        """Sequences ``[B, T, ...]`` from reset states: the output of every step, ``[B, T, ...]`` (the last
        step's, ``[:, -1]``, is the network's IIM output for networks that aggregate over time)."""
        if sequence.dim() < 2:
            raise ValueError(f"CompiledStream.run: expected [B, T, ...], got shape {tuple(sequence.shape)}")
        self.reset()
        return torch.stack([self.step(sequence[:, t]) for t in range(sequence.shape[1])], 1)


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _largest_difference(ours: Tensor, theirs: Tensor) -> str:
    if ours.shape != theirs.shape:
        return f"shape {tuple(theirs.shape)} against {tuple(ours.shape)}"
    return f"largest difference {(ours.double() - theirs.double()).abs().max().item():.3g}"


def _verify(stream: CompiledStream, network: nn.Module, example: Tensor, steps: int = 2) -> None:
    """Run ``steps`` steps of ``example`` in the compiled stream and in the network (EIM) and raise
    :class:`StreamError` naming the first output or state that differs; then have the stream copy its output
    where the graph returns a tensor it holds (a state, the input or a constant)."""
    modules = dict(network.named_modules())
    stream.reset()
    outputs = []
    with iteration_mode(network, "external"), torch.no_grad():
        for t in range(steps):
            y = stream.step(example)
            compared = [("output", network(example), y)]
            for spec in stream.specs:
                key = _state_key(spec)
                compared.append(
                    (f"state {key}", modules[spec.module].get_state()[spec.name], stream.states[key])
                )
            for what, ours, theirs in compared:
                if ours.shape != theirs.shape or not torch.allclose(
                    ours, theirs, rtol=1e-5, atol=1e-6, equal_nan=True
                ):
                    raise StreamError(
                        f"{type(network).__name__}: the compiled step's {what} differs from the network's at "
                        f"step {t} of the check ({_largest_difference(ours, theirs)}); the network takes a "
                        "branch on tensor values or holds a state outside get_state()"
                    )
            outputs.append(y)
    first, second = outputs[-2:]
    stream._copy_output = _shares_memory(first, second) or any(
        _shares_memory(second, s) for s in (*stream._states, example)
    )
    stream.reset()


def _trace_and_freeze(
    network: nn.Module, twin: nn.Module, step: _Step, example: Tensor, states: list[Tensor]
) -> torch.jit.ScriptModule:
    """``step`` (over ``twin``, the copy of ``network``) traced with the stream's neuron operators, frozen
    and warmed up."""
    with (
        iteration_mode(twin, "external"),
        inference_builtins(STREAM_OPS),
        torch.no_grad(),
        _module_tracker(twin) as entered,
    ):
        try:
            traced = torch.jit.trace(step, (example, *states), check_trace=False)
        except StreamError:
            raise
        except Exception as error:
            where = entered[-1] if entered else ""
            raise StreamError(
                f"{where or type(network).__name__}: cannot be traced into a compiled stream "
                f"({type(error).__name__}: {error})"
            ) from error
    with _no_fusion(example.device), torch.no_grad():
        graph = torch.jit.freeze(traced.eval(), optimize_numerics=False)
        for _ in range(3):  # the profiling executor optimises the graph on its first calls
            graph(example, *states)
    return graph


def compile_stream(network: nn.Module, example_frame: Tensor, *, check: bool = True) -> CompiledStream:
    """Compile ``network``'s single step for streaming (see the module docstring).

    Args:
        network: any bidl network, in eval mode (its iteration mode and states are left as they were; a copy
            is traced, so the stream does not follow later changes to its weights).
        example_frame: one timestep of input ``[B, ...]``, with the batch size, shape, dtype and device that
            every frame given to :meth:`CompiledStream.step` will have.
        check: compare the stream's outputs and states with the network's on two steps of the example (and
            raise :class:`StreamError` naming what differs).

    Raises:
        StreamError: a module in training mode, an active plasticity rule, a network whose step does not
            return one tensor, a step that cannot be traced (naming the module it failed in) or that does
            not reproduce the network's.
    """
    if not isinstance(example_frame, Tensor) or example_frame.dim() < 1:
        raise ValueError(f"compile_stream: example_frame must be a tensor [B, ...], got {example_frame!r}")
    began = time.perf_counter()
    _check_inference(network)
    specs = state_specs(network, example_frame)
    twin = copy.deepcopy(network)
    states = _init_states(specs, example_frame.shape[0], example_frame.device)
    step = _Step(twin, specs).eval()
    with warnings.catch_warnings():
        # the Python conditions of the modules on shapes and on the frozen parameters are meant to be fixed
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", r".*torch\.jit\.\w+` is deprecated", DeprecationWarning)
        graph = _trace_and_freeze(network, twin, step, example_frame, states)
    stream = CompiledStream(graph, specs, example_frame)
    if check:
        _verify(stream, network, example_frame)
    stream.compile_seconds = time.perf_counter() - began
    return stream
