r"""NIR export of the bidl networks that NIR can express, and a cross-check by importing them into snnTorch
and into Norse.

`NIR <https://nnir.readthedocs.io>`_ (the Neuromorphic Intermediate Representation) describes a network by
continuous-time primitives; a simulator or chip discretises them with its own time step. :func:`to_nir` turns
the single-step (EIM) form of a network into a :class:`nir.NIRGraph`; :func:`export_nir` writes it to an
HDF5 file (the same model always gives the same bytes) and returns a JSON-able summary.

The bidl neuron (:mod:`bidl.functional.lif`) is written as NIR's current-based LIF (``CubaLIF``) with an
instantaneous synapse, integrated with the forward Euler step ``dt`` (``metadata["dt"]``):

.. math::

    \tau_{syn} = dt,\quad w_{in} = 1,\quad \tau_{mem} = \frac{dt}{1-\alpha},\quad r = \frac{\tau_{mem}}{dt}
    = \frac{1}{1-\alpha},\quad v_{leak} = \frac{\beta}{1-\alpha},\quad v_{threshold} = \theta,\quad
    v_{reset} = v_{reset}

One Euler step of :math:`\tau_{syn}\dot I = -I + w_{in} S` with :math:`\tau_{syn} = dt` gives :math:`I_t =
S_t`, the step of :math:`\tau_{mem}\dot v = v_{leak} - v + r I` gives :math:`v_t = \alpha v_{t-1} + I_t +
\beta` between spikes: bidl's :math:`U_t = X_t + V_{t-1}`. A plain NIR ``LIF`` with the same ``tau``,
``r`` and ``v_leak`` means the same, but the two importers read different parts of it. snnTorch's
(``snntorch.import_nir._nir_to_snntorch_module``) leaves ``r`` out of the dynamics (``mem = beta mem +
input``, right only where ``r dt / tau = 1``; elsewhere it divides the layer's threshold by the smallest
``r dt / tau``); Norse's (``norse.torch.utils.import_nir._import_norse_module``) ignores ``r`` altogether
(``v += dt / tau (v_leak - v + input)``, right only where ``r = 1``). So a ``LIF`` spikes as bidl does in
only one of them once the leaks differ within a layer (per-channel leaks, or a folded BatchNorm): with ``r``
written, in snnTorch; with ``r`` folded into the synapse before it and ``r = 1``, in Norse. Both read the
``CubaLIF`` above right:
snnTorch's as ``Synaptic(alpha = 1 - dt / tau_syn = 0, beta = 1 - dt / tau_mem)`` after asserting ``r =
tau_mem / dt``, Norse's as ``LIBoxCell(tau_syn)`` (one step gives ``i = w_in S``), then ``r i`` into
``LIFBoxCell(tau_mem)``.

BatchNorm on the membrane (``norm="state"``, eval mode, per channel :math:`BN(u) = a u + c`) folds exactly
into the LIF in the space of the normalised membrane :math:`W = BN(U)` (what is compared with
:math:`\theta`): :math:`W_t = a\alpha\,R(W_{t-1}) + a X_t + c + a\beta`. The synapse before it is scaled by
``a`` per output channel (bias ``a b + c``) and the LIF gets :math:`\alpha' = a\alpha`, :math:`\beta' =
a\beta`; BatchNorm on the synaptic current (``norm="input"``) folds into the synapse alone. A standalone
BatchNorm (the DVS128 network's input norm) becomes a 1x1 convolution with the diagonal weight ``a`` and
bias ``c``. Convolutions are written dense (``groups=1``, a grouped weight made block-diagonal: nir 1.0.8
types a grouped Conv2d's input by ``weight.shape[1]``, so a depthwise one fails its own type check), with
integer padding (``"same"`` / ``"valid"`` resolved).

The mapping is exact when :math:`\beta = 0`: bidl starts from :math:`V_0 = 0`, NIR simulators from rest
(:math:`v_{leak}`); with :math:`\beta \ne 0` the graph is written with the mapping above and the caveat is
recorded in ``metadata["caveats"]``. Numerically, the folded weights and leaks are rounded to float32 once
(the fold is computed in float64), so membranes can differ from bidl's by float32 rounding; ``tau_mem`` is
chosen among the float32 neighbours of ``dt / (1 - alpha')`` so that ``1 - dt / tau_mem`` in float32 gives
back ``alpha'`` where a float32 value can, and ``tau_syn = float32(dt)`` makes ``1 - dt / tau_syn`` exactly 0.
Refused with :class:`NIRExportError` (naming the module path and type): max pooling, LIAF (analog output),
LIF+, electrically coupled neurons, soft reset, a leak :math:`\alpha'` outside ``[0, 1)``, plastic synapses,
embeddings, activations, residual sums and other tensor operations outside the supported modules, and
anything that follows a :class:`~bidl.TemporalAggregation` other than identities. The aggregation itself is
not a per-step operation: it ends the graph and is recorded as ``metadata["readout"]``.

Node names are the bidl module paths (``conv1.synapse``, ``conv1.neuron``, ``fc1.flatten``, ...); NIR
shapes exclude the batch axis.

:func:`bidl_spikes` runs the bidl network; :func:`import_snntorch` / :func:`run_snntorch` and
:func:`import_norse` / :func:`run_norse` run an exported graph with snnTorch's (``snntorch.import_nir``) and
Norse's (``norse.torch.from_nir``) importers, for a spike-by-spike comparison. snnTorch's importer hard-codes
``dt = 1e-4`` (:func:`import_snntorch` rescales the time constants from the graph's ``dt``); Norse's takes
``dt`` as an argument (default ``1e-3``; :func:`import_norse` passes the graph's). Both need ``v_leak = 0``
and ``v_reset = 0`` (they reset to 0; Norse also starts the membrane at ``v_leak`` and adds ``v_leak`` to a
CubaLIF's synaptic current), snnTorch's one threshold per layer; Norse 1.1 has no ``AvgPool2d``. Both map
NIR's ``Flatten`` (whose dims exclude the batch) onto ``torch.nn.Flatten`` with the same dims, which then
flattens the batch axis too: run them with a batch of 1.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

try:
    import nir
except ImportError as error:  # pragma: no cover - nir is an optional dependency
    raise ImportError("bidl.export.nir needs the 'nir' package (pip install nir)") from error

from ..layers import STBlock, TemporalAggregation, TimeDistributed
from ..models.resnet import ElectricallyCoupledLIAF
from ..neurons import LIF, LIFPlus
from ..state import SpatioTemporalModule, reset_states, set_iteration_mode
from .states import ExportError

__all__ = [
    "SNNTORCH_DT",
    "NIRExportError",
    "to_nir",
    "export_nir",
    "import_snntorch",
    "run_snntorch",
    "import_norse",
    "run_norse",
    "bidl_spikes",
]

SNNTORCH_DT = 1e-4
"""The time step that ``snntorch.import_nir`` hard-codes when it turns a NIR (Cuba)LIF's taus into leaks."""

INITIAL_STATE_NOTE = (
    "bidl neurons start from V_0 = 0 (a zero membrane, not the resting potential v_leak); "
    "with v_leak = 0 this is NIR's resting state and the graph reproduces bidl exactly"
)

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_IDENTITIES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_AGGREGATED = "<aggregated>"  # producer marker of a TemporalAggregation's output


class NIRExportError(ExportError):
    """A module that NIR cannot express; the message names its path and type and says why."""


def _where(path: str, module: nn.Module) -> str:
    return f"{path or '<network>'} ({type(module).__name__})"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _refuse(path: str, module: nn.Module, reason: str) -> NIRExportError:
    return NIRExportError(f"{_where(path, module)}: {reason}")


# -- numerics ------------------------------------------------------------------------------------------------
def _f32(x: np.ndarray | float) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64).astype(np.float32))


def _np64(t: Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def _tau_for(alpha: np.ndarray, dt: float) -> np.ndarray:
    """float32 ``tau = dt / (1 - alpha)``, nudged by a few ulps so that ``1 - dt / tau`` computed in float32
    (what a float32 importer such as snnTorch's does) gives back ``float32(alpha)`` where one can."""
    target = alpha.astype(np.float32).astype(np.float64)
    dt32 = np.float32(dt)

    def error(tau: np.ndarray) -> np.ndarray:
        return np.abs((np.float32(1.0) - dt32 / tau).astype(np.float64) - target)

    best = (dt / (1.0 - alpha)).astype(np.float32)
    best_error = error(best)
    up, down = best.copy(), best.copy()
    for _ in range(8):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(0.0))
        for candidate in (down, up):
            candidate_error = error(candidate)
            better = candidate_error < best_error
            best = np.where(better, candidate, best)
            best_error = np.where(better, candidate_error, best_error)
    return np.ascontiguousarray(best.astype(np.float32))


def _batchnorm_affine(bn: nn.Module, path: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, c)`` per channel (float64) of an eval-mode BatchNorm: ``BN(u) = a u + c``."""
    if not isinstance(bn, _BATCHNORMS):
        raise _refuse(path, bn, "only BatchNorm1d / BatchNorm2d can be folded into NIR nodes")
    if bn.running_mean is None or bn.running_var is None:
        raise _refuse(path, bn, "a BatchNorm without running statistics normalises by batch statistics")
    if bn.num_features != channels:
        raise _refuse(path, bn, f"normalises {bn.num_features} channels, its input has {channels}")
    scale = _np64(bn.weight) if bn.affine else np.ones(channels)
    shift = _np64(bn.bias) if bn.affine else np.zeros(channels)
    a = scale / np.sqrt(_np64(bn.running_var) + bn.eps)
    return a, shift - a * _np64(bn.running_mean)


def _per_channel(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-channel vector ``[C]`` broadcast to a neuron shape ``(C, ...)``."""
    return np.broadcast_to(values.reshape(-1, *([1] * (len(shape) - 1))), shape)


def _summary_value(values: np.ndarray) -> float | list[float]:
    """One float when every neuron shares the value, else one value per channel."""
    flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    if np.all(values == values.flat[0]):
        return float(values.flat[0])
    return [float(v) for v in flat[:, 0]]


def _channel_affine_node(a: np.ndarray, c: np.ndarray, shape: tuple[int, ...], path: str, module: nn.Module):
    """``a x + c`` per channel: a diagonal 1x1 Conv2d for ``(C, H, W)``, a diagonal Affine for ``(F,)``."""
    if len(shape) == 3:
        weight = np.diag(a).reshape(len(a), len(a), 1, 1)
        return nir.Conv2d(
            input_shape=tuple(shape[1:]),
            weight=_f32(weight),
            stride=(1, 1),
            padding=(0, 0),
            dilation=(1, 1),
            groups=1,
            bias=_f32(c),
        )
    if len(shape) == 1:
        return nir.Affine(weight=_f32(np.diag(a)), bias=_f32(c))
    raise _refuse(path, module, f"a per-channel affine on inputs shaped {shape} has no NIR node")


# -- tracing -------------------------------------------------------------------------------------------------
def _kind(module: nn.Module) -> str | None:
    """How the exporter treats a module: a kind it handles, ``"unsupported"``, or ``None`` (descend)."""
    if isinstance(module, STBlock):
        return "block"
    if isinstance(module, LIF):
        return "neuron"
    if isinstance(module, TemporalAggregation):
        return "aggregate"
    if isinstance(module, _IDENTITIES) or (isinstance(module, nn.Sequential) and len(module) == 0):
        return "identity"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.AvgPool2d):
        return "avgpool"
    if isinstance(module, _BATCHNORMS):
        return "batchnorm"
    if isinstance(module, SpatioTemporalModule) and not isinstance(module, TimeDistributed):
        return "unsupported"  # stateful or mode-dependent: its semantics are not the children's
    if next(module.children(), None) is None:
        return "unsupported"
    return None


def _collect(module: nn.Module, path: str, found: list[tuple[str, nn.Module, str]], seen: set[int]) -> None:
    """The outermost modules the exporter handles (or refuses), in module-tree order."""
    if isinstance(module, TimeDistributed):  # a per-step wrapper: the wrapped module, named by the wrapper
        _collect(module.module, path, found, seen)
        return
    if id(module) in seen:
        return
    seen.add(id(module))
    kind = _kind(module)
    if kind is not None:
        found.append((path, module, kind))
        return
    for name, child in module.named_children():
        _collect(child, _join(path, name), found, seen)


@contextlib.contextmanager
def _single_step_eval(network: nn.Module) -> Iterator[None]:
    """EIM, eval mode, no autograd, states reset; the modes, training flags and states restored after."""
    modes = {m: m.iteration for m in network.modules() if isinstance(m, SpatioTemporalModule)}
    training = {m: m.training for m in network.modules()}
    set_iteration_mode(network, "external")
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        reset_states(network)
        for module, mode in modes.items():
            module.iteration = mode
        for module, flag in training.items():
            module.training = flag


class _GraphBuilder:
    """Builds the NIR nodes while the network runs one step, from forward hooks on the handled modules.

    Every tensor that a handled module produces is remembered (by identity and version) with the NIR node
    that computes it; a module whose input is not such a tensor was fed by an operation NIR cannot see.
    """

    def __init__(self, example_input: Tensor, dt: float):
        self.dt = dt
        self.nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(example_input.shape[1:]))}
        self.edges: list[tuple[str, str]] = []
        self.producers: dict[int, tuple[str, int]] = {id(example_input): ("input", example_input._version)}
        self.shapes: dict[str, tuple[int, ...]] = {"input": tuple(example_input.shape[1:])}
        self.keep: list[Tensor] = [example_input]  # keeps the ids above from being reused
        self.calls: dict[str, int] = {}
        self.aggregation: tuple[str, str, str] | None = None  # (path, mode, node it aggregates)
        self.neurons: dict[str, dict[str, Any]] = {}
        self.caveats: list[str] = []

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _source(self, path: str, module: nn.Module, args: tuple, kwargs: dict) -> tuple[str, Tensor]:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if kwargs or len(tensors) != 1 or len(args) != 1:
            raise _refuse(path, module, "NIR nodes take exactly one tensor input per step")
        (x,) = tensors
        known = self.producers.get(id(x))
        if known is None:
            raise _refuse(
                path,
                module,
                "its input is computed by a tensor operation outside the modules NIR can express (e.g. a "
                "residual sum or arithmetic in a forward method), so the graph cannot follow it",
            )
        if known[1] != x._version:
            raise _refuse(path, module, "its input was modified in place after the module that computed it")
        return known[0], x

    def _name(self, path: str) -> str:
        base = path or "network"
        count = self.calls.get(base, 0)
        self.calls[base] = count + 1
        name = base if count == 0 else f"{base}_call{count}"
        return f"{name}_" if name in ("input", "output") else name

    def _chain(self, source: str, nodes: list[tuple[str, Any]], output: Tensor) -> None:
        for name, node in nodes:
            self.nodes[name] = node
            self.edges.append((source, name))
            source = name
        self.producers[id(output)] = (source, output._version)
        self.shapes[source] = tuple(output.shape[1:])
        self.keep.append(output)

    # -- hooks ---------------------------------------------------------------------------------------
    def before(self, path: str, kind: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if kind == "unsupported":
            raise _refuse(path, module, self._unsupported_reason(module))
        if self.aggregation is not None and kind != "identity":
            raise _refuse(
                path,
                module,
                f"follows the temporal aggregation {self.aggregation[0]!r}: NIR graphs are per timestep, so "
                "only identities may come after the aggregation that ends the graph",
            )
        self._source(path, module, args, kwargs)

    def after(self, path: str, kind: str, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        source, x = self._source(path, module, args, kwargs)
        if not isinstance(output, Tensor):
            raise _refuse(path, module, "NIR nodes return exactly one tensor per step")
        if kind == "identity":
            self.producers[id(output)] = (source, output._version)
            self.keep.append(output)
            return
        if kind == "aggregate":
            self.aggregation = (path, module.mode, source)
            self.producers[id(output)] = (_AGGREGATED, output._version)
            self.keep.append(output)
            return
        in_shape, out_shape = tuple(x.shape[1:]), tuple(output.shape[1:])
        if kind == "conv":
            nodes = self._conv(path, module, in_shape)
        else:
            nodes = getattr(self, f"_{kind}")(path, module, in_shape, out_shape)
        self._chain(source, nodes, output)

    @staticmethod
    def _unsupported_reason(module: nn.Module) -> str:
        if isinstance(module, nn.MaxPool2d | nn.MaxPool1d | nn.AdaptiveMaxPool2d):
            return "NIR has no max pooling"
        if isinstance(module, nn.Embedding):
            return "NIR has no embedding (table lookup) node"
        if isinstance(module, nn.ReLU | nn.Sigmoid | nn.Tanh | nn.GELU | nn.LeakyReLU | nn.ELU):
            return "NIR has no analog activation function node"
        if isinstance(module, SpatioTemporalModule):
            return "a stateful module that is neither an ST block, a LIF neuron nor a temporal aggregation"
        return "no NIR node expresses this module"

    # -- node builders (each returns [(name, node), ...] in dataflow order) ----------------------------
    def _conv(self, path: str, conv: nn.Conv2d, in_shape: tuple, scale=None, shift=None):
        if conv.padding_mode != "zeros":
            raise _refuse(path, conv, f"padding_mode {conv.padding_mode!r}: NIR convolutions pad with zeros")
        if len(in_shape) != 3:
            raise _refuse(path, conv, f"expects a [C, H, W] input per step, got {list(in_shape)}")
        weight, bias = self._folded(conv, scale, shift)
        if conv.groups > 1:  # nir 1.0.8 mistypes grouped convolutions: write the block-diagonal dense weight
            dense = np.zeros((weight.shape[0], conv.in_channels, *weight.shape[2:]))
            per_in, per_out = weight.shape[1], weight.shape[0] // conv.groups
            for g in range(conv.groups):
                outs = slice(g * per_out, (g + 1) * per_out)
                dense[outs, g * per_in : (g + 1) * per_in] = weight[outs]
            weight = dense
        node = nir.Conv2d(
            input_shape=tuple(in_shape[1:]),
            weight=_f32(weight),
            stride=tuple(int(s) for s in conv.stride),
            padding=self._conv_padding(path, conv),
            dilation=tuple(int(d) for d in conv.dilation),
            groups=1,
            bias=_f32(bias),
            metadata={"bidl_module": path},
        )
        return [(self._name(path), node)]

    @staticmethod
    def _conv_padding(path: str, conv: nn.Conv2d) -> tuple[int, int]:
        """Integer padding (``"same"`` and ``"valid"`` resolved), which every NIR importer understands."""
        if conv.padding == "valid":
            return (0, 0)
        if conv.padding == "same":
            total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
            if any(t % 2 for t in total):
                raise _refuse(path, conv, "asymmetric 'same' padding has no NIR equivalent")
            return (total[0] // 2, total[1] // 2)
        return (int(conv.padding[0]), int(conv.padding[1]))

    def _linear(
        self, path: str, linear: nn.Linear, in_shape: tuple, out_shape: tuple, scale=None, shift=None
    ):
        nodes = []
        if len(in_shape) != 1:
            nodes += self._flatten_all(path, linear, in_shape)
        weight, bias = self._folded(linear, scale, shift)
        nodes.append(
            (
                self._name(path),
                nir.Affine(weight=_f32(weight), bias=_f32(bias), metadata={"bidl_module": path}),
            )
        )
        return nodes

    def _flatten_all(self, path: str, module: nn.Module, in_shape: tuple):
        flatten = nir.Flatten(
            input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1, metadata={"bidl_module": path}
        )
        prefix = path.rsplit(".", 1)[0] if path.endswith(".synapse") else path
        prefix = "" if path == "synapse" else prefix
        return [(self._name(_join(prefix, "flatten")), flatten)]

    @staticmethod
    def _folded(synapse: nn.Conv2d | nn.Linear, scale, shift) -> tuple[np.ndarray, np.ndarray]:
        """The synapse's weight and bias (float64) with ``scale * (W x + b) + shift`` folded in."""
        weight = _np64(synapse.weight)
        bias = _np64(synapse.bias) if synapse.bias is not None else np.zeros(weight.shape[0])
        if scale is not None:
            weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
            bias = scale * bias + shift
        return weight, bias

    def _flatten(self, path: str, module: nn.Flatten, in_shape: tuple, out_shape: tuple):
        ndim = len(in_shape) + 1
        start = module.start_dim % ndim
        end = module.end_dim % ndim
        if start == 0:
            raise _refuse(path, module, "flattens the batch axis, which NIR shapes do not have")
        node = nir.Flatten(
            input_type={"input": np.array(in_shape)},
            start_dim=start - 1,
            end_dim=-1 if end == ndim - 1 else end - 1,
            metadata={"bidl_module": path},
        )
        return [(self._name(path), node)]

    def _avgpool(self, path: str, pool: nn.AvgPool2d, in_shape: tuple, out_shape: tuple):
        if pool.ceil_mode or pool.divisor_override is not None:
            raise _refuse(path, pool, "ceil_mode / divisor_override average pooling has no NIR equivalent")
        padding = np.array(nn.modules.utils._pair(pool.padding))
        if padding.any() and not pool.count_include_pad:
            raise _refuse(
                path, pool, "padded average pooling without count_include_pad has no NIR equivalent"
            )
        pair = nn.modules.utils._pair
        node = nir.AvgPool2d(  # no metadata: nir 1.0.8's reader drops an AvgPool2d's metadata
            kernel_size=np.array(pair(pool.kernel_size)),
            stride=np.array(pair(pool.stride if pool.stride is not None else pool.kernel_size)),
            padding=padding,
        )
        return [(self._name(path), node)]

    def _batchnorm(self, path: str, bn: nn.Module, in_shape: tuple, out_shape: tuple):
        a, c = _batchnorm_affine(bn, path, in_shape[0] if in_shape else 0)
        node = _channel_affine_node(a, c, in_shape, path, bn)
        node.metadata = {"bidl_module": path}
        return [(self._name(path), node)]

    def _neuron(self, path: str, neuron: LIF, in_shape: tuple, out_shape: tuple):
        """A bare LIF: its membrane BatchNorm (if any) becomes a per-channel affine node before it."""
        self._check_neuron(path, neuron)
        nodes = []
        scale = None
        if neuron.norm is not None:
            scale, shift = _batchnorm_affine(neuron.norm, _join(path, "norm"), in_shape[0])
            node = _channel_affine_node(scale, shift, in_shape, _join(path, "norm"), neuron.norm)
            node.metadata = {"bidl_module": _join(path, "norm")}
            nodes.append((self._name(_join(path, "norm")), node))
        nodes.append(self._lif(path, neuron, out_shape, scale, "state" if scale is not None else "none"))
        return nodes

    def _block(self, path: str, block: STBlock, in_shape: tuple, out_shape: tuple):
        if block.plasticity is not None:
            raise _refuse(
                path, block, "a plastic synapse (local learning) changes its weights during inference"
            )
        self._check_neuron(_join(path, "neuron"), block.neuron)
        synapse, pool = block.synapse, block.pool
        if pool is not None and not isinstance(pool, nn.AvgPool2d):
            reason = "NIR has no max pooling" if isinstance(pool, nn.MaxPool2d) else "unsupported pooling"
            raise _refuse(_join(path, "pool"), pool, reason)
        if pool is not None and (np.array(nn.modules.utils._pair(pool.padding)).any() or pool.ceil_mode):
            raise _refuse(
                _join(path, "pool"),
                pool,
                "a padded or ceil-mode pooling does not commute with the folded BatchNorm",
            )
        # W = a_s (a_i S + c_i + V) + c_s with S the (pooled) synaptic current: fold a_s a_i, a_s c_i + c_s
        channels = out_shape[0]
        scale, shift, folded = np.ones(channels), np.zeros(channels), []
        if block.input_norm is not None:
            a, c = _batchnorm_affine(block.input_norm, _join(path, "input_norm"), channels)
            scale, shift = a, c
            folded.append("input")
        state_scale = None
        if block.neuron.norm is not None:
            state_scale, c = _batchnorm_affine(block.neuron.norm, _join(path, "neuron.norm"), channels)
            scale, shift = state_scale * scale, state_scale * shift + c
            folded.append("state")
        synapse_path = _join(path, "synapse")
        if isinstance(synapse, nn.Conv2d):
            nodes = self._conv(synapse_path, synapse, in_shape, scale, shift)
        elif isinstance(synapse, nn.Linear):
            nodes = self._linear(synapse_path, synapse, in_shape, out_shape, scale, shift)
        else:
            raise _refuse(synapse_path, synapse, "only Conv2d and Linear synapses have NIR nodes")
        if pool is not None:
            nodes += self._avgpool(_join(path, "pool"), pool, (), ())
        nodes.append(
            self._lif(_join(path, "neuron"), block.neuron, out_shape, state_scale, "+".join(folded) or "none")
        )
        return nodes

    @staticmethod
    def _check_neuron(path: str, neuron: nn.Module) -> None:
        if isinstance(neuron, ElectricallyCoupledLIAF):
            raise _refuse(
                path,
                neuron,
                "electrically coupled membranes (a convolution of the previous state) and an analog (LIAF) "
                "output have no NIR node",
            )
        if isinstance(neuron, LIFPlus):
            raise _refuse(
                path, neuron, "LIF+ stages (conductances, adaptation, refractoriness) have no NIR node"
            )
        if getattr(neuron, "analog", False):
            raise _refuse(path, neuron, "an analog (LIAF) output is not a spike: NIR's CubaLIF emits spikes")
        if type(neuron) is not LIF:
            raise _refuse(path, neuron, "only the plain bidl LIF neuron maps onto NIR's CubaLIF")
        if neuron.reset != "hard":
            raise _refuse(path, neuron, "soft reset (subtract theta): NIR's CubaLIF only resets to v_reset")

    def _lif(self, path: str, neuron: LIF, shape: tuple, norm_scale: np.ndarray | None, folded: str):
        params = neuron.neuron_parameters(len(shape) + 1)
        full = {k: np.broadcast_to(_np64(v), (1, *shape))[0] for k, v in params.items()}
        alpha, beta = full["alpha"], full["beta"]
        if norm_scale is not None:  # leak and constant in the normalised membrane's space
            scale = _per_channel(norm_scale, shape)
            alpha, beta = scale * alpha, scale * beta
        bad = np.argwhere((alpha < 0) | (alpha >= 1) | ~np.isfinite(alpha))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            value = float(alpha[index])
            what = "a * alpha (BatchNorm scale a folded into the leak)" if norm_scale is not None else "alpha"
            raise _refuse(
                path,
                neuron,
                f"channel {index[0]}: leak {what} = {value:.6g} is outside [0, 1); NIR's CubaLIF needs a "
                "decaying leak (alpha = 1 has no finite tau, alpha outside [0, 1] is no leak)",
            )
        if np.any(beta != 0):
            self.caveats.append(
                f"{path}: beta != 0 (v_leak = beta' / (1 - alpha')): bidl starts from V_0 = 0 while NIR "
                "simulators start at rest, so the first steps differ"
            )
        node = nir.CubaLIF(
            tau_syn=_tau_for(np.zeros_like(alpha), self.dt),  # float32(dt): an instantaneous synapse
            tau_mem=_tau_for(alpha, self.dt),
            r=_f32(1.0 / (1.0 - alpha)),
            v_leak=_f32(beta / (1.0 - alpha)),
            v_threshold=_f32(full["theta"]),
            v_reset=_f32(full["v_reset"]),
            w_in=_f32(np.ones_like(alpha)),
            metadata={"bidl_module": path, "folded_norm": folded},
        )
        name = self._name(path)
        self.neurons[name] = {
            "module": path,
            "alpha": _summary_value(alpha),
            "beta": _summary_value(beta),
            "theta": _summary_value(full["theta"]),
            "v_reset": _summary_value(full["v_reset"]),
            "batchnorm_folded": folded != "none",
            "folded_norm": folded,
            "shape": list(shape),
        }
        return name, node


def _build(network: nn.Module, example_input: Tensor, dt: float) -> tuple[nir.NIRGraph, _GraphBuilder]:
    if not isinstance(example_input, Tensor):
        raise TypeError(
            f"example_input: expected one timestep as a Tensor, got {type(example_input).__name__}"
        )
    if not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt: must be a positive time step in seconds, got {dt!r}")
    found: list[tuple[str, nn.Module, str]] = []
    _collect(network, "", found, set())
    builder = _GraphBuilder(example_input, float(dt))
    handles = []
    for path, module, kind in found:

        def before(mod, args, kwargs, _path=path, _kind=kind):
            builder.before(_path, _kind, mod, args, kwargs)

        def after(mod, args, kwargs, output, _path=path, _kind=kind):
            builder.after(_path, _kind, mod, args, kwargs, output)

        handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(module.register_forward_hook(after, with_kwargs=True))
    try:
        with _single_step_eval(network):
            output = network(example_input)
    finally:
        for handle in handles:
            handle.remove()

    if not isinstance(output, Tensor):
        raise NIRExportError(
            f"<network> ({type(network).__name__}): returns {type(output).__name__}, not a tensor"
        )
    known = builder.producers.get(id(output))
    if builder.aggregation is not None:
        if known is None or known[0] != _AGGREGATED:
            raise NIRExportError(
                f"<network> ({type(network).__name__}): its output is not the temporal aggregation "
                f"{builder.aggregation[0]!r} (or an identity of it)"
            )
        last = builder.aggregation[2]
        readout: dict[str, Any] = {
            "aggregation": builder.aggregation[1],
            "module": builder.aggregation[0],
            "node": last,
        }
    else:
        if known is None or known[1] != output._version:
            raise NIRExportError(
                f"<network> ({type(network).__name__}): its output is computed (or modified in place) by a "
                "tensor operation outside the modules NIR can express"
            )
        last = known[0]
        readout = {"aggregation": "none", "node": last}
    builder.nodes["output"] = nir.Output(output_type=np.array(builder.shapes[last]))
    builder.edges.append((last, "output"))

    # keep what the output depends on (a side branch that nothing reads would be a second graph output)
    needed, frontier = {"output"}, ["output"]
    while frontier:
        node = frontier.pop()
        for src, dst in builder.edges:
            if dst == node and src not in needed:
                needed.add(src)
                frontier.append(src)
    nodes = {name: node for name, node in builder.nodes.items() if name in needed}
    edges = [(src, dst) for src, dst in builder.edges if src in needed and dst in needed]
    metadata: dict[str, Any] = {
        "source": "bidl",
        "bidl_version": _bidl_version(),
        "network": type(network).__name__,
        "dt": float(dt),
        "readout": readout,
        "initial_state": INITIAL_STATE_NOTE,
        "time_step": "the graph is one EIM step; run it once per timestep, from the zero state",
    }
    if builder.caveats:
        metadata["caveats"] = "; ".join(builder.caveats)
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    builder.neurons = {k: v for k, v in builder.neurons.items() if k in needed}
    return graph, builder


def _bidl_version() -> str:
    from .. import __version__

    return str(__version__)


# -- public API ----------------------------------------------------------------------------------------------
def to_nir(network: nn.Module, example_input: Tensor, *, dt: float = 1e-4) -> nir.NIRGraph:
    """The single-step (EIM) network as a NIR graph.

    Parameters
    ----------
    network
        A bidl network (its iteration mode, training flags and states are restored afterwards).
    example_input
        One timestep, ``[1, C, H, W]`` or ``[1, F]``; the graph's input shape is its shape without the batch.
    dt
        The Euler step that relates NIR's time constants to bidl's leak (``tau_mem = dt / (1 - alpha)``,
        ``tau_syn = dt``).

    Returns
    -------
    nir.NIRGraph
        Nodes named by module path; the output is the network's per-step output before its temporal
        aggregation (in the gesture networks the last LIF layer's spikes). ``metadata`` holds ``dt``,
        ``bidl_version``, ``readout`` (the aggregation over time of that output, e.g. ``{"aggregation":
        "mean", "module": "aggregate", "node": "fc2.neuron"}``, or ``"none"``) and the initial-state note.

    Raises
    ------
    NIRExportError
        For a module NIR cannot express, naming its path and type and why.
    """
    return _build(network, example_input, dt)[0]


def _summary(graph: nir.NIRGraph, builder: _GraphBuilder, path: str | Path | None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "nodes": [{"name": name, "type": type(node).__name__} for name, node in graph.nodes.items()],
        "edges": [[src, dst] for src, dst in graph.edges],
        "dt": builder.dt,
        "readout": dict(graph.metadata["readout"]),
        "lif": builder.neurons,
    }
    if "caveats" in graph.metadata:
        summary["caveats"] = graph.metadata["caveats"]
    if path is not None:
        summary["path"] = str(path)
    return summary


def export_nir(network: nn.Module, example_input: Tensor, path: str | Path, *, dt: float = 1e-4) -> dict:
    """Write the network's NIR graph (:func:`to_nir`) to ``path`` with ``nir.write``.

    The file is reproducible: the same model gives the same bytes (h5py >= 3 creates groups and datasets
    without timestamps, HDF5 orders links by name and the deflate filter is deterministic).

    Returns
    -------
    dict
        A JSON-able summary: ``nodes`` (name and NIR type, in graph order), ``edges``, ``dt``, ``readout``,
        ``lif`` (per CubaLIF node: its module, the folded ``alpha`` (alpha' = a alpha), ``beta``, ``theta``,
        ``v_reset`` as one float or one per channel, ``batchnorm_folded``), ``path`` and, when there are
        any, ``caveats``.
    """
    graph, builder = _build(network, example_input, dt)
    nir.write(str(path), graph)
    return _summary(graph, builder, path)


def import_snntorch(graph_or_path: nir.NIRGraph | str | Path) -> nn.Module:
    """The snnTorch module of a NIR graph or file (``snntorch.import_nir.import_from_nir``).

    The graph is copied and the time constants of its LIF and CubaLIF nodes rescaled from
    ``metadata["dt"]`` to the ``dt = 1e-4`` that snnTorch's importer assumes (``r = tau_mem / dt`` of a
    bidl CubaLIF is ``1 / (1 - alpha)`` whatever ``dt``, so it stays); its messages are silenced.

    Raises
    ------
    ValueError
        For a neuron that snnTorch's importer cannot reproduce: ``v_leak != 0`` (it asserts), ``v_reset != 0``
        (it would silently reset to 0) or several thresholds in one layer (it asserts).
    """
    from snntorch.import_nir import import_from_nir

    graph = _read_or_copy(graph_or_path)
    dt = float(graph.metadata.get("dt", SNNTORCH_DT)) if isinstance(graph.metadata, dict) else SNNTORCH_DT
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.LIF | nir.CubaLIF):
            continue
        _check_resting_and_reset(name, node, "snnTorch's")
        if np.unique(node.v_threshold).size != 1:
            raise ValueError(f"{name}: several thresholds; snnTorch's importer needs one per layer")
        if dt != SNNTORCH_DT:
            fields = ("tau",) if isinstance(node, nir.LIF) else ("tau_mem", "tau_syn")
            for field in fields:  # the same float32 leak 1 - dt / tau at snnTorch's dt
                tau = getattr(node, field).astype(np.float32)
                leak = (np.float32(1.0) - np.float32(dt) / tau).astype(np.float64)
                setattr(node, field, _tau_for(leak, SNNTORCH_DT))
    with contextlib.redirect_stdout(io.StringIO()):
        return import_from_nir(graph)


def run_snntorch(module: nn.Module, inputs: Tensor) -> Tensor:
    """Run an imported snnTorch module over ``inputs [T, B, ...]`` step by step from reset neurons.

    Returns
    -------
    Tensor
        The graph's output per step, ``[T, B, n]`` (trailing dims flattened; the batch axis re-added where
        the importer's Flatten dropped it, which needs ``B = 1``).
    """
    for neuron in module.modules():
        reset = getattr(neuron, "reset_mem", None)
        if callable(reset) and hasattr(neuron, "mem"):
            reset()
    outputs, state = [], None
    with torch.no_grad():
        for x in inputs:
            result = module(x, state)
            if isinstance(result, tuple):
                y, state = result
            else:
                y = result
            outputs.append(_step_output(y, inputs.shape[1], "run_snntorch"))
    return torch.stack(outputs)


_NORSE_NODES = (  # the node types that norse.torch.from_nir (Norse 1.1) maps
    nir.Input,
    nir.Output,
    nir.Affine,
    nir.Linear,
    nir.Conv2d,
    nir.Flatten,
    nir.SumPool2d,
    nir.IF,
    nir.LIF,
    nir.CubaLIF,
)


def import_norse(graph_or_path: nir.NIRGraph | str | Path, *, dt: float | None = None) -> nn.Module:
    """The Norse module of a NIR graph or file (``norse.torch.from_nir``), integrated with the Euler step
    ``dt`` (by default the graph's ``metadata["dt"]``; Norse's own default is ``1e-3``).

    The graph is passed to Norse unchanged. The module is stateful: ``module(x, state)`` returns the output
    and the state for the next step (:func:`run_norse` runs it over time).

    Raises
    ------
    ImportError
        Without the ``norse`` package.
    ValueError
        Without a ``dt`` (neither the argument nor ``metadata["dt"]``), or for a node that Norse's importer
        cannot reproduce: a type it does not map (e.g. ``AvgPool2d``), a ``LIF`` with ``r != 1`` (it ignores
        ``r``), ``v_leak != 0`` (its neurons start at ``v_leak``, and its CubaLIF adds ``v_leak`` to the
        synaptic current as well) or ``v_reset != 0`` (it resets to 0).
    """
    try:
        from norse.torch import from_nir
    except ImportError as error:
        raise ImportError(
            "import_norse needs the 'norse' package (pip install --no-deps norse==1.1.0: its torchvision "
            "requirement is not needed to import NIR graphs and may replace the installed torch)"
        ) from error

    graph = _read_or_copy(graph_or_path)
    if dt is None and isinstance(graph.metadata, dict) and "dt" in graph.metadata:
        dt = float(graph.metadata["dt"])
    if dt is None or not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt: a positive Euler step is needed (argument or metadata['dt']), got {dt!r}")
    for name, node in graph.nodes.items():
        if not isinstance(node, _NORSE_NODES):
            raise ValueError(f"{name}: Norse's importer has no {type(node).__name__} node")
        if isinstance(node, nir.LIF) and not np.all(np.asarray(node.r) == 1):
            raise ValueError(
                f"{name}: a LIF with r != 1; Norse's importer ignores r (write the neuron as a CubaLIF)"
            )
        if isinstance(node, nir.LIF | nir.CubaLIF):
            _check_resting_and_reset(name, node, "Norse's")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Norse 1.1 calls the deprecated nirtorch.load
        return from_nir(graph, dt=dt)


def run_norse(module: nn.Module, inputs: Tensor) -> Tensor:
    """Run an imported Norse module over ``inputs [T, B, ...]`` step by step, carrying its state from a
    fresh one (every neuron at rest) at the first step.

    Returns
    -------
    Tensor
        The graph's output per step, ``[T, B, n]`` (trailing dims flattened; the batch axis re-added where
        the importer's Flatten dropped it, which needs ``B = 1``).
    """
    outputs, state = [], None
    with torch.no_grad():
        for x in inputs:
            result = module(x, state)
            if not isinstance(result, tuple):
                raise TypeError(
                    f"run_norse: expected the (output, state) of a stateful Norse graph module, got "
                    f"{type(result).__name__}"
                )
            y, state = result
            outputs.append(_step_output(y, inputs.shape[1], "run_norse"))
    return torch.stack(outputs)


def _read_or_copy(graph_or_path: nir.NIRGraph | str | Path) -> nir.NIRGraph:
    if isinstance(graph_or_path, str | Path):
        return nir.read(str(graph_or_path))
    if not isinstance(graph_or_path, nir.NIRGraph):
        raise TypeError(
            f"graph_or_path: expected a nir.NIRGraph or a file path, got {type(graph_or_path).__name__}"
        )
    return copy.deepcopy(graph_or_path)


def _check_resting_and_reset(name: str, node: nir.LIF | nir.CubaLIF, importer: str) -> None:
    if np.any(np.asarray(node.v_leak) != 0):
        raise ValueError(
            f"{name}: v_leak != 0 (bidl beta != 0); {importer} importer supports v_leak = 0 only"
        )
    if np.any(np.asarray(node.v_reset) != 0):
        raise ValueError(f"{name}: v_reset != 0; {importer} importer always resets to 0")


def _step_output(y: Tensor, batch: int, caller: str) -> Tensor:
    """One step's output as ``[B, n]``; a batch of 1 re-added where an importer's Flatten dropped it."""
    if batch == 1:
        return y.reshape(1, -1)
    if y.shape[0] != batch:
        raise ValueError(f"{caller}: the output {tuple(y.shape)} lost the batch of {batch}; use B = 1")
    return y.reshape(batch, -1)


def bidl_spikes(network: nn.Module, inputs: Tensor) -> Tensor:
    """The spikes of the network's last spiking layer per step: ``[T, B, n]`` for ``inputs [T, B, ...]``.

    Runs the network in EIM (eval, no autograd, states reset first); its modes, training flags and states
    are restored afterwards.
    """
    neurons = [m for m in network.modules() if isinstance(m, LIF) and not m.analog]
    if not neurons:
        raise ValueError(f"{type(network).__name__}: has no spiking (LIF) layer")
    last: list[Tensor] = []

    def record(module, args, output):
        last.append(output)

    handles = [n.register_forward_hook(record) for n in neurons]
    steps = []
    try:
        with _single_step_eval(network):
            for x in inputs:
                last.clear()
                network(x)
                if not last:
                    raise ValueError(f"{type(network).__name__}: no spiking layer ran in a step")
                steps.append(last[-1].reshape(x.shape[0], -1).clone())
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(steps)
