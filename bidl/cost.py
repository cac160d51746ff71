r"""Computational and memory cost of spatio-temporal (ST) layers and networks (paper Table 1, Fig. 4).

**Table 1.** An ST layer maps ``K`` input channels to an output ``[T, H, W, C]`` (batch 1) with an ``I x J``
kernel (``U x I x J`` for Conv3D). With ``R = T*H*W*C`` (output elements) and ``Q = I*J*K`` (the fan-in of one
output), this module counts, per layer and sample:

========  =========================  ================  ===================  =======================
kind      synaptic operations        element-wise ops  weights              biases (+ neuron consts)
========  =========================  ================  ===================  =======================
conv2d    ``R*Q`` MACs               0                 ``Q*C``              ``C``
conv3d    ``U*R*Q`` MACs             0                 ``U*Q*C``            ``C``
convlstm  ``4*R*I*J*(K+C)`` MACs     ``13*R``          ``4*I*J*C*(K+C)``    ``4*C``
convliaf  ``R*Q`` MACs               ``10*R``          ``Q*C``              ``C`` (+ 4 or ``4*C``)
convlif   ``R*Q`` ACs                ``9*R``           ``Q*C``              ``C`` (+ 4 or ``4*C``)
========  =========================  ================  ===================  =======================

(:data:`TABLE1_FORMULAS` holds these as text; :func:`table1_markdown` renders them. The paper's Table 1 is
an image missing from its text; the synaptic and weight columns follow the paper's description and caption,
the element-wise column is this library's.) ``conv2d`` is a
time-distributed ``nn.Conv2d``, ``conv3d`` the causal :class:`~bidl.ann.CausalConv3d` (``U - 1`` zero frames
before the first, so exactly ``U`` times Conv2D), ``convlstm`` :class:`~bidl.ann.ConvLSTM` (an input conv
``K -> 4C`` and a hidden conv ``C -> 4C``, both ``I x J``; the hidden conv also runs on the zero state at
``t = 0``), ``convliaf`` / ``convlif`` :class:`~bidl.layers.ConvLIAF` / :class:`~bidl.layers.ConvLIF`
without BatchNorm.

**MAC and AC.** A multiply-accumulate (MAC) is ``acc += w * x``; an accumulate (AC) is ``acc += w``: when the
input ``x`` is a spike (0 or 1), the product is either ``w`` or nothing, so a synaptic operation needs no
multiplier. A layer fed by spikes (a ConvLIF layer's input is the previous spiking layer's output) therefore
does ACs, every other layer MACs. Whether an input is a spike train is decided from the data: an input all of
whose values are 0 or 1 is binary.

- Table 1 and Fig. 4 (:func:`st_layer_cost`, :func:`measure_st_layer`, :func:`figure4_counts`) count every
  synaptic operation of a spike-fed layer as one AC (firing rate 1: the count does not depend on the data,
  as in the paper).
- :func:`model_cost` counts event-driven ACs: a zero input costs nothing, a spike costs one AC per synapse
  it reaches (exactly, edge effects of zero padding included; see :func:`event_accumulates`).

**Element-wise operations** per neuron (or hidden element) per step are what this library's code executes at
inference, counted from :func:`bidl.functional.lif_step` and :func:`bidl.ann.lstm_cell` (named constants
below, checked against a dispatch-level count in the tests): LIF 9, LIAF 10, LSTM 13.

**Not counted:** bias additions (one per output element: they initialise the accumulator; ``FlopCounterMode``
leaves them out too), BatchNorm on a synaptic current or on the input (at inference it is an affine map that
folds into the preceding synapse's weights and bias), residual sums, pooling, temporal aggregation, dropout,
reshapes and copies, dtype casts, and embedding lookups (a table read: 0 MACs). BatchNorm on a membrane
("norm_state") does not fold (it acts on ``X + V``) and is counted as :data:`NORM_STATE_OPS` per neuron and
step.

**Weights** are the synaptic weights without biases (Table 1's count); biases and the neuron constants
(alpha, beta, theta, v_reset: 4 per layer in ASM, ``4*C`` in CSM, buffers or parameters) are reported apart,
and ``params`` is their sum (every parameter and buffer of the layer).

Example:
    >>> st_layer_cost("conv3d", T=8, H=16, W=16, C=64, K=64)["macs"]
    226492416
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from .ann import LSTM, CausalConv3d, ConvLSTM
from .functional import neuron_kernel
from .layers import ConvLIAF, ConvLIF, TimeDistributed
from .neurons import LIAF, LIF, LIFPlus
from .state import SpatioTemporalModule, iteration_mode

__all__ = [
    "KINDS",
    "LAYER_NAMES",
    "INTEGRATE_OPS",
    "FIRE_OPS",
    "HARD_RESET_OPS",
    "SOFT_RESET_OPS",
    "LEAK_OPS",
    "LIF_OPS",
    "LIAF_OPS",
    "ACTIVATION_OPS",
    "LIAF_TR_OPS",
    "NORM_STATE_OPS",
    "COUPLING_OPS",
    "LSTM_GATE_SUM_OPS",
    "LSTM_CELL_OPS",
    "LSTM_OPS",
    "NEURON_CONSTANTS",
    "ELEMENTWISE_OPS",
    "TABLE1_FORMULAS",
    "ElementwiseCounter",
    "is_binary",
    "event_accumulates",
    "neuron_step_ops",
    "st_layer_cost",
    "build_st_layer",
    "measure_st_layer",
    "figure4_counts",
    "table1_markdown",
    "model_cost",
    "flop_counter_macs",
]

KINDS = ("conv2d", "conv3d", "convlstm", "convliaf", "convlif")
"""The ST layers of Table 1."""

# -- element-wise operations per neuron per step, as bidl.functional.lif_step runs them at inference ------
INTEGRATE_OPS = 1
"""``U = X + V``: one add."""
FIRE_OPS = 2
"""``F = 1[U - theta > 0]``: the surrogate spike function subtracts theta (one sub) and compares with 0 (one
compare); the cast of the boolean to the float dtype is a conversion, not an operation."""
HARD_RESET_OPS = 4
"""``R = F*v_reset + (1 - F)*U``: two muls, one sub (``1 - F``), one add."""
SOFT_RESET_OPS = 2
"""RMP ``R = U - F*theta``: one mul, one sub."""
LEAK_OPS = 2
"""``V = alpha*R + beta``: one mul, one add."""
LIF_OPS = INTEGRATE_OPS + FIRE_OPS + HARD_RESET_OPS + LEAK_OPS
"""9: a LIF neuron with the hard reset (the default) per step. The soft reset makes it 7. (A chip's fused
built-ins ``cmp_and_fire`` and ``reset_with_decay`` need 5: add, compare, select, mul, add.)"""
ACTIVATION_OPS: dict[str, int] = {"relu": 1, "sigmoid": 1, "tanh": 1, "identity": 0}
"""LIAF's analog readout ``act(.)`` per neuron and step (the identity executes nothing)."""
LIAF_TR_OPS = 1
"""LIAF's ``"TR"`` mode reads ``act(U - theta)``: one more sub."""
LIAF_OPS = LIF_OPS + ACTIVATION_OPS["relu"]
"""10: LIF's 9 and the ReLU readout (the default NTR mode; ``pre_reset`` or ``post_leak``, the same)."""
NORM_STATE_OPS = 2
"""BatchNorm on the membrane ("norm_state") at inference: the affine ``a*U + b``, one mul and one add."""
COUPLING_OPS = 1
"""Jester v2's electrically coupled LIAF adds the coupling current ``K * V_{t-1}`` to ``X_t`` (one add per
neuron from the second step on; the coupling conv itself is a synapse, counted as MACs)."""
LSTM_GATE_SUM_OPS = 4
"""ConvLSTM / LSTM: ``W_x * X + W_h * H`` for the four gates, one add per gate and hidden element."""
LSTM_CELL_OPS = 9
""":func:`bidl.ann.lstm_cell` per hidden element: 3 sigmoids (i, f, o), 2 tanhs (g, c), 3 muls, 1 add."""
LSTM_OPS = LSTM_GATE_SUM_OPS + LSTM_CELL_OPS
"""13 element-wise operations per hidden element and step."""
NEURON_CONSTANTS = 4
"""alpha, beta, theta, v_reset: one each per layer (ASM) or per channel (CSM)."""

ELEMENTWISE_OPS: dict[str, int] = {
    "conv2d": 0,
    "conv3d": 0,
    "convlstm": LSTM_OPS,
    "convliaf": LIAF_OPS,
    "convlif": LIF_OPS,
}
"""Element-wise operations per output element (``R`` of them) of each Table 1 kind."""

TABLE1_FORMULAS: dict[str, dict[str, str]] = {
    "conv2d": {
        "synaptic": "R·Q MACs",
        "elementwise": "0",
        "ops": "R·Q",
        "weights": "Q·C",
        "biases": "C",
    },
    "conv3d": {
        "synaptic": "U·R·Q MACs",
        "elementwise": "0",
        "ops": "U·R·Q",
        "weights": "U·Q·C",
        "biases": "C",
    },
    "convlstm": {
        "synaptic": "4·R·(Q + I·J·C) MACs",
        "elementwise": f"{LSTM_OPS}·R",
        "ops": f"4·R·(Q + I·J·C) + {LSTM_OPS}·R",
        "weights": "4·C·(Q + I·J·C)",
        "biases": "4·C",
    },
    "convliaf": {
        "synaptic": "R·Q MACs",
        "elementwise": f"{LIAF_OPS}·R",
        "ops": f"R·Q + {LIAF_OPS}·R",
        "weights": "Q·C",
        "biases": f"C (+ {NEURON_CONSTANTS} neuron constants; {NEURON_CONSTANTS}·C per channel)",
    },
    "convlif": {
        "synaptic": "R·Q ACs",
        "elementwise": f"{LIF_OPS}·R",
        "ops": f"R·Q + {LIF_OPS}·R",
        "weights": "Q·C",
        "biases": f"C (+ {NEURON_CONSTANTS} neuron constants; {NEURON_CONSTANTS}·C per channel)",
    },
}
"""Table 1 in the paper's notation (``R = T·H·W·C``, ``Q = I·J·K``): per kind the synaptic operations, the
element-wise operations, their sum ``ops``, the weights (no biases) and the biases."""

LAYER_NAMES = {
    "conv2d": "Conv2D",
    "conv3d": "Conv3D",
    "convlstm": "ConvLSTM",
    "convliaf": "ConvLIAF",
    "convlif": "ConvLIF",
}

_SYNAPSES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

# aten ops counted as element-wise operations: arithmetic, comparison, selection, activation (in-place
# variants too). Views, copies, casts, fills, zeros, concatenation, padding, reductions are not counted.
_ELEMENTWISE_ATEN = frozenset(
    {
        "add",
        "sub",
        "rsub",
        "mul",
        "div",
        "neg",
        "reciprocal",
        "abs",
        "sign",
        "sgn",
        "gt",
        "ge",
        "lt",
        "le",
        "eq",
        "ne",
        "where",
        "maximum",
        "minimum",
        "clamp",
        "clamp_min",
        "clamp_max",
        "relu",
        "threshold",
        "hardtanh",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "softplus",
        "sigmoid",
        "tanh",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "pow",
        "addcmul",
        "addcdiv",
        "lerp",
        "logical_and",
        "logical_or",
        "logical_not",
    }
)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind: unknown ST layer {kind!r}; choose one of {KINDS}")
    return kind


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _default_spike_input(kind: str, spike_input: bool | None) -> bool:
    """ConvLIF is fed spikes (the output of a spiking layer), every other kind analog values."""
    return kind == "convlif" if spike_input is None else bool(spike_input)


# -- Table 1: formulas ---------------------------------------------------------------------------------------
def st_layer_cost(
    kind: str,
    *,
    T: int,
    H: int,
    W: int,
    C: int,
    K: int,
    I: int = 3,  # noqa: E741  (the paper's name)
    J: int = 3,
    U: int = 3,
    spike_input: bool | None = None,
    sharing: str = "all",
) -> dict[str, Any]:
    """Table 1: the cost of one ST layer with output ``[T, H, W, C]`` (batch 1), from the formulas.

    Args:
        kind: one of :data:`KINDS`.
        T, H, W, C: output steps, height, width, channels; K: input channels.
        I, J: kernel height and width; U: Conv3D's temporal kernel size (other kinds ignore it).
        spike_input: whether the layer's input is spikes, so that its input synapses do ACs instead of MACs
            (ConvLSTM's hidden synapses always do MACs: the hidden state is analog). Default: ``True`` for
            ``convlif``, ``False`` otherwise (Table 1's setting).
        sharing: the neuron constants of ConvLIF / ConvLIAF, ``"all"`` (4) or ``"channel"`` (``4*C``).

    Returns:
        ``kind``, ``R``, ``Q``, ``macs``, ``acs``, ``synaptic_ops`` (``macs + acs``), ``elementwise``,
        ``ops`` (``synaptic_ops + elementwise``), ``weights`` (synaptic, no biases), ``biases``,
        ``neuron_params``, ``params`` (``weights + biases + neuron_params``) and ``formulas`` (the
        :data:`TABLE1_FORMULAS` entry).
    """
    _check_kind(kind)
    _check_sizes(T=T, H=H, W=W, C=C, K=K, I=I, J=J, U=U)
    if sharing not in ("all", "channel"):
        raise ValueError(f"sharing: unknown mode {sharing!r}; choose one of ('all', 'channel')")
    R = T * H * W * C
    Q = I * J * K
    if kind == "conv3d":
        input_ops, hidden_ops, weights, biases = U * R * Q, 0, U * Q * C, C
    elif kind == "convlstm":
        input_ops, hidden_ops = 4 * R * Q, 4 * R * I * J * C
        weights, biases = 4 * I * J * C * (K + C), 4 * C
    else:
        input_ops, hidden_ops, weights, biases = R * Q, 0, Q * C, C
    spikes = _default_spike_input(kind, spike_input)
    macs = hidden_ops + (0 if spikes else input_ops)
    acs = input_ops if spikes else 0
    elementwise = ELEMENTWISE_OPS[kind] * R
    neuron_params = 0
    if kind in ("convlif", "convliaf"):
        neuron_params = NEURON_CONSTANTS * (C if sharing == "channel" else 1)
    return {
        "kind": kind,
        "R": R,
        "Q": Q,
        "macs": macs,
        "acs": acs,
        "synaptic_ops": macs + acs,
        "elementwise": elementwise,
        "ops": macs + acs + elementwise,
        "weights": weights,
        "biases": biases,
        "neuron_params": neuron_params,
        "params": weights + biases + neuron_params,
        "formulas": dict(TABLE1_FORMULAS[kind]),
    }


def table1_markdown() -> str:
    """Table 1 as a markdown table in the paper's notation (``R = T·H·W·C``, ``Q = I·J·K``)."""
    lines = [
        "| layer | synaptic ops | element-wise ops | weights | biases |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        f = TABLE1_FORMULAS[kind]
        lines.append(
            f"| {LAYER_NAMES[kind]} | {f['synaptic']} | {f['elementwise']} | {f['weights']} | {f['biases']} |"
        )
    return "\n".join(lines)


# -- counting what runs ------------------------------------------------------------------------------------
class ElementwiseCounter(TorchDispatchMode):
    """Count element-wise operations at the aten level: each call of an arithmetic, comparison, selection or
    activation op (``add, sub, rsub, mul, div, gt, ge, lt, where, relu, sigmoid, tanh, exp, clamp, ...`` and
    their in-place forms) adds its output's element count. Views, copies, dtype casts, fills, zeros, stacking,
    padding, reductions, convolutions and matrix products are not counted.

    Inside the counter the multi-step neurons run the reference step loop (``neuron_kernel("reference")``):
    a fused kernel executes the same operations per neuron and step, but outside aten, where no dispatch mode
    sees them.

    Attributes:
        total: the number of element-wise operations.
        by_op: the same per aten op name.
        paused: while true, nothing is counted (see :meth:`pause`).

    Example:
        >>> with ElementwiseCounter() as counter:
        ...     _ = torch.ones(3) * 2 + 1
        >>> counter.total, dict(counter.by_op)
        (6, {'mul': 3, 'add': 3})
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: Counter[str] = Counter()
        self.paused = False
        self._kernel: Any = None

    def __enter__(self) -> ElementwiseCounter:
        self._kernel = neuron_kernel("reference")
        self._kernel.__enter__()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._kernel.__exit__(*exc)

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Count nothing inside this block (e.g. the measuring code's own checks)."""
        previous, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = previous

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        if self.paused:
            return out
        name = func.overloadpacket.__name__
        if name.endswith("_") and not name.startswith("_"):
            name = name[:-1]  # in-place variant
        if name in _ELEMENTWISE_ATEN and isinstance(out, Tensor):
            self.total += out.numel()
            self.by_op[name] += out.numel()
        return out


def is_binary(x: Tensor) -> bool:
    """Whether every value of ``x`` is 0 or 1 (a spike tensor; an all-zero tensor counts as binary)."""
    return bool(torch.logical_or(x == 0, x == 1).all())


def _dense_macs(module: nn.Module, output: Tensor) -> int:
    """Multiply-accumulates of one call of a conv or linear layer, from its output's shape (no bias)."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def event_accumulates(module: nn.Module, x: Tensor) -> int:
    """Exact event-driven accumulates of a conv or linear layer on a binary input ``x``: the number of
    (active input, output) pairs connected by a synapse.

    Linear: ``count_nonzero(x) * out_features``. Conv: the same conv (stride, padding, dilation, groups) run
    with an all-ones kernel of one output channel per group gives, at each output position, the number of
    active inputs in its receptive field; summed and multiplied by the output channels per group. Zero
    padding contributes nothing, so a spike at the border reaches fewer outputs than one inside: exact, edge
    effects included (unlike ``dense MACs x firing rate``).
    """
    if isinstance(module, nn.Linear):
        return int(torch.count_nonzero(x)) * module.out_features
    if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(
            f"event_accumulates: expects an nn.Linear or nn.Conv1d/2d/3d, got {type(module).__name__}"
        )
    dims = len(module.kernel_size)
    if x.dim() == dims + 1:  # unbatched input
        x = x.unsqueeze(0)
    x = x.to(torch.float64)
    padding = module.padding
    if module.padding_mode != "zeros":
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    groups = module.groups
    ones = x.new_ones(groups, module.in_channels // groups, *module.kernel_size)
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    counts = conv(x, ones, None, module.stride, padding, module.dilation, groups)
    return int(round(counts.sum().item())) * (module.out_channels // groups)


def _coupled_type() -> type | None:
    """Jester v2's electrically coupled LIAF (imported lazily: bidl.models imports this package's layers)."""
    try:
        from .models.resnet import ElectricallyCoupledLIAF
    except ImportError:  # pragma: no cover - the models are part of the package
        return None
    return ElectricallyCoupledLIAF


def _lifplus_probe_ops(neuron: LIFPlus) -> int:
    """Element-wise operations per neuron of one LIF+ step, counted on a probe (LIF+'s stage modes make many
    combinations): :func:`~bidl.functional.lifplus_step` on ``[1, channels]`` from the zero state, without
    the membrane norm (counted apart) and without training noise."""
    from .functional import lifplus_step

    width = neuron.channels if neuron.sharing == "channel" else 1
    kwargs = neuron._step_kwargs(2)
    kwargs.update(norm=None, noise=0.0)
    x = torch.full((1, width), 0.25, dtype=neuron.alpha.dtype, device=neuron.alpha.device)
    with torch.no_grad(), ElementwiseCounter() as counter:
        lifplus_step(x, None, **kwargs)
    return counter.total // x.numel()


def neuron_step_ops(neuron: LIF) -> int:
    """Element-wise operations per neuron per step of a LIF / LIAF / LIF+ module at inference.

    LIF: :data:`LIF_OPS` (hard reset) or 7 (soft); LIAF adds its activation (:data:`ACTIVATION_OPS`) and,
    in ``"TR"`` mode, :data:`LIAF_TR_OPS`; BatchNorm on the membrane adds :data:`NORM_STATE_OPS`. LIF+ is
    counted on a probe step (see :func:`_lifplus_probe_ops`); with every stage at its default it is LIF's.
    The coupling add of an electrically coupled LIAF is not included (it skips the first step; see
    :func:`model_cost`).
    """
    if not isinstance(neuron, LIF):
        raise TypeError(
            f"neuron_step_ops: expects a LIF, LIAF or LIFPlus module, got {type(neuron).__name__}"
        )
    if isinstance(neuron, LIFPlus):
        ops = _lifplus_probe_ops(neuron)
    else:
        reset_ops = HARD_RESET_OPS if neuron.reset == "hard" else SOFT_RESET_OPS
        ops = INTEGRATE_OPS + FIRE_OPS + reset_ops + LEAK_OPS
        if isinstance(neuron, LIAF):
            ops += ACTIVATION_OPS[neuron.activation] + (LIAF_TR_OPS if neuron.liaf_mode == "TR" else 0)
    if neuron.norm is not None:
        ops += NORM_STATE_OPS
    return ops


# -- Table 1: measurement ----------------------------------------------------------------------------------
def build_st_layer(
    kind: str,
    *,
    C: int,
    K: int,
    I: int = 3,  # noqa: E741
    J: int = 3,
    U: int = 3,
    sharing: str = "all",
) -> nn.Module:
    """The real layer of a Table 1 kind (IIM, eval mode): ``K -> C`` channels, ``I x J`` kernel, stride 1,
    zero padding ``(I//2, J//2)`` (the output keeps ``H x W`` for odd kernels), biases, no BatchNorm. ConvLSTM
    needs ``I == J`` (its hidden conv is square and "same")."""
    _check_kind(kind)
    _check_sizes(C=C, K=K, I=I, J=J, U=U)
    padding = (I // 2, J // 2)
    if kind == "conv2d":
        layer: nn.Module = TimeDistributed(nn.Conv2d(K, C, (I, J), padding=padding))
    elif kind == "conv3d":
        layer = CausalConv3d(K, C, (U, I, J), padding=I // 2)
        layer.conv.padding = (0, *padding)
    elif kind == "convlstm":
        if I != J:
            raise ValueError(f"I, J: ConvLSTM's kernel is square, got {I} x {J}")
        layer = ConvLSTM(K, C, I, padding=I // 2)
    else:
        block = ConvLIF if kind == "convlif" else ConvLIAF
        layer = block(K, C, (I, J), padding=padding, norm=None, sharing=sharing)
    return layer.eval()


def _synaptic_counts(layer: nn.Module, x: Tensor) -> tuple[int, int, int, Counter[str], bool]:
    """Run ``layer`` on ``x`` once: (MACs, ACs, FlopCounterMode MACs, element-wise ops by op, input binary).

    Synaptic operations come from ``FlopCounterMode`` per module (FLOPs / 2); a synapse module whose every
    input is binary, with at least one spike, does ACs, any other MACs (as in :func:`model_cost`: ConvLSTM's
    hidden conv at ``T = 1`` sees only the zero state, and does MACs)."""
    binary: dict[str, bool] = {}
    active: dict[str, bool] = {}
    handles = []
    ew = ElementwiseCounter()
    for name, module in layer.named_modules():
        if isinstance(module, _SYNAPSES):

            def hook(mod: nn.Module, inputs: tuple, name: str = name) -> None:
                with ew.pause():
                    binary[name] = binary.get(name, True) and is_binary(inputs[0])
                    active[name] = active.get(name, False) or bool(inputs[0].any())

            handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad(), FlopCounterMode(display=False, depth=None) as flops, ew:
            layer(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = flops.get_flop_counts()
    root = type(layer).__name__
    macs = acs = 0
    for name, spikes in binary.items():
        module_macs = sum(counts.get(f"{root}.{name}", {}).values()) // 2
        if spikes and active[name]:
            acs += module_macs
        else:
            macs += module_macs
    total = flops.get_total_flops() // 2
    if macs + acs != total:  # pragma: no cover - a synapse outside nn.Conv*/nn.Linear
        raise RuntimeError(f"synaptic operations outside conv / linear modules: {total} != {macs + acs}")
    return macs, acs, total, ew.by_op, is_binary(x)


def _parameter_counts(layer: nn.Module) -> dict[str, int]:
    weights = biases = neuron_params = 0
    for module in layer.modules():
        if isinstance(module, _SYNAPSES):
            weights += module.weight.numel()
            biases += module.bias.numel() if module.bias is not None else 0
        elif isinstance(module, LIF):
            tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
            neuron_params += sum(t.numel() for t in tensors)
    every = sum(p.numel() for p in layer.parameters()) + sum(b.numel() for b in layer.buffers())
    return {"weights": weights, "biases": biases, "neuron_params": neuron_params, "params": every}


def measure_st_layer(
    kind: str,
    *,
    T: int,
    H: int,
    W: int,
    C: int,
    K: int,
    I: int = 3,  # noqa: E741
    J: int = 3,
    U: int = 3,
    spike_input: bool | None = None,
    sharing: str = "all",
    rate: float = 0.3,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure one ST layer: build it (:func:`build_st_layer`), run it once in IIM under ``torch.no_grad()``
    on an input ``[1, T, K, H', W']`` whose output is ``[1, T, C, H, W]``, and count what runs.

    - synaptic operations: ``torch.utils.flop_counter.FlopCounterMode`` (it counts ``2 x`` the
      multiply-accumulates of every convolution and matrix product, biases excluded): MACs = FLOPs / 2, per
      synapse module; those of a module whose input is binary are ACs.
    - element-wise operations: :class:`ElementwiseCounter`.
    - weights, biases, neuron constants: the layer's parameters and buffers.

    Args:
        spike_input: binary input (Bernoulli spikes of probability ``rate``) or analog (uniform in
            ``[0.1, 1.1)``, never 0 or 1). Default as :func:`st_layer_cost`.
        seed: the input's random seed.

    Returns:
        The keys of :func:`st_layer_cost` (without ``formulas``, ``R``, ``Q``) and ``flop_counter_macs``
        (FlopCounterMode's total / 2), ``binary_input`` (measured), ``elementwise_by_op`` and ``layer``
        (the module's class name).
    """
    _check_kind(kind)
    _check_sizes(T=T, H=H, W=W, C=C, K=K, I=I, J=J, U=U)
    layer = build_st_layer(kind, C=C, K=K, I=I, J=J, U=U, sharing=sharing)
    height = H + I - 1 - 2 * (I // 2)  # the input size whose padded conv gives H x W
    width = W + J - 1 - 2 * (J // 2)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, T, K, height, width)
    if _default_spike_input(kind, spike_input):
        x = (torch.rand(shape, generator=generator) < rate).float()
    else:
        x = torch.rand(shape, generator=generator) + 0.1
    macs, acs, total, by_op, binary = _synaptic_counts(layer, x)
    elementwise = sum(by_op.values())
    return {
        "kind": kind,
        "layer": type(layer).__name__,
        "macs": macs,
        "acs": acs,
        "synaptic_ops": macs + acs,
        "elementwise": elementwise,
        "ops": macs + acs + elementwise,
        **_parameter_counts(layer),
        "flop_counter_macs": total,
        "binary_input": binary,
        "elementwise_by_op": dict(by_op),
    }


# -- Figure 4 ----------------------------------------------------------------------------------------------
def figure4_counts(
    *,
    T: int = 8,
    H: int = 16,
    W: int = 16,
    C: int = 64,
    K: int = 64,
    U: int = 3,
    I: int = 3,  # noqa: E741
    J: int = 3,
    measure: bool = True,
) -> dict[str, Any]:
    """Figure 4: the five ST layers at the paper's setting (T 8, H = W 16, C = K 64, U = I = J 3).

    Returns:
        ``setting`` (the sizes); ``formula`` and ``measured`` (``None`` without ``measure``): per kind the
        dicts of :func:`st_layer_cost` / :func:`measure_st_layer`; ``ratios``: per kind, from the formula
        counts, its cost over ConvLIF's and ConvLIAF's: ``synaptic_ops_vs_convlif`` (MACs + ACs only: the
        paper's "3x" and "8x"), ``ops_vs_convlif`` (all operations, element-wise included),
        ``weights_vs_convlif`` (synaptic weights) and the same ``..._vs_convliaf``.
    """
    setting = dict(T=T, H=H, W=W, C=C, K=K, U=U, I=I, J=J)
    formula = {kind: st_layer_cost(kind, **setting) for kind in KINDS}
    measured = {kind: measure_st_layer(kind, **setting) for kind in KINDS} if measure else None
    ratios: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        ratios[kind] = {
            f"{key}_vs_{base}": formula[kind][key] / formula[base][key]
            for base in ("convlif", "convliaf")
            for key in ("synaptic_ops", "ops", "weights")
        }
    return {"setting": setting, "formula": formula, "measured": measured, "ratios": ratios}


# -- per-model cost ----------------------------------------------------------------------------------------
@dataclass
class _SynapseRecord:
    name: str
    type: str
    calls: int = 0
    dense_macs: int = 0
    binary: bool = True
    active: int = 0
    elements: int = 0
    event_acs: int = 0


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode, no gradients and IIM (when the model has iteration modes); restores the training flag."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if any(isinstance(m, SpatioTemporalModule) for m in model.modules()):
                with iteration_mode(model, "internal"):
                    yield
            else:
                yield
    finally:
        model.train(training)


def _batch_input(batch: Any) -> Tensor:
    """The input tensor of a batch: the batch itself, or the first item of a tuple / list (``(x, y)``)."""
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if not isinstance(batch, Tensor):
        raise TypeError(f"batches: expected tensors [B, T, ...] or (x, y) pairs, got {type(batch).__name__}")
    return batch


def model_cost(
    model: nn.Module, batches: Iterable[Any], *, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Measure a network's inference cost per sample over ``batches`` (e.g. its evaluation data).

    The model runs in IIM, eval mode, without gradients (its training flag and iteration mode are restored).
    Forward hooks on every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` (the ST blocks' synapses, the ConvLSTM / LSTM
    maps, the coupling convs, the heads) count, per call:

    - dense MACs from the shapes: ``out.numel() * in_channels/groups * prod(kernel)`` (conv),
      ``out.numel() * in_features`` (linear); biases excluded, as ``FlopCounterMode`` (see
      :func:`flop_counter_macs`, which the tests check this against);
    - whether the input is binary (:func:`is_binary`) and its nonzero fraction.

    A layer whose every input (over all calls) is binary and that received at least one spike is spike-fed:
    its cost is the exact event-driven accumulates (:func:`event_accumulates`: a zero costs nothing, a spike
    one AC per synapse it reaches). Any other layer does its dense MACs; that includes a layer that only ever
    saw zeros (``silent_input``: a dead spiking layer and a dead ReLU / LIAF layer look alike, so it is
    counted conservatively), and a layer whose input is binary at some calls only (ConvLSTM's hidden conv
    sees the zero state at ``t = 0`` and analog states after). Neurons (forward hooks on every LIF / LIAF /
    LIF+ module) cost
    ``neurons x steps x`` :func:`neuron_step_ops` (neurons and steps from the module's input
    ``[B, T, ...]``), plus :data:`COUPLING_OPS` per neuron and step after the first for electrically
    coupled neurons; ConvLSTM / LSTM layers cost :data:`LSTM_OPS` per hidden element and step (their
    output's size).

    Not counted (see the module docstring): bias additions, BatchNorm on synaptic currents or inputs (folds
    into the synapse), residual sums, pooling, temporal aggregation, dropout, embedding lookups (0 MACs).

    Args:
        model: the network, already on ``device``.
        batches: an iterable of input tensors ``[B, T, ...]`` or of ``(x, ...)`` tuples (a data loader).
        device: where the inputs are moved.

    Returns:
        A dict with, per sample (floats):

        - ``macs``, ``acs``, ``dense_synaptic_ops`` (every synaptic operation as if a MAC);
        - ``neuron_elementwise``, ``lstm_elementwise``, ``elementwise`` (their sum);
        - ``ops``: ``macs + acs + elementwise``;

        and ``spike_rate`` (active inputs / input elements over the spike-fed layers: their firing rates
        weighted by input size; ``None`` without spike-fed layers), ``ac_fraction`` (ACs / dense synaptic
        operations of the spike-fed layers: their rate weighted by synapses; ``None`` without), ``params``
        (all parameters), ``params_trainable``, ``n_samples``, ``totals`` (the operation counts summed over
        all samples, ints) and ``layers``: per synapse module, totals over all samples, ``name``, ``type``,
        ``calls``, ``dense_macs``, ``binary_input`` (spike-fed), ``silent_input`` (only zeros),
        ``input_rate`` (nonzero fraction), ``macs``, ``acs``.
    """
    records: dict[str, _SynapseRecord] = {}
    neuron_ops = lstm_ops = 0
    handles = []
    coupled = _coupled_type()
    step_ops: dict[str, int] = {}

    def synapse_hook(module: nn.Module, inputs: tuple, output: Tensor, name: str) -> None:
        record = records[name]
        x = inputs[0]
        record.calls += 1
        record.dense_macs += _dense_macs(module, output)
        record.elements += x.numel()
        record.active += int(torch.count_nonzero(x))
        if record.binary:
            record.binary = is_binary(x)
            if record.binary:
                record.event_acs += event_accumulates(module, x)

    def neuron_hook(module: nn.Module, inputs: tuple, output: Tensor, name: str) -> None:
        nonlocal neuron_ops
        x = inputs[0]
        neuron_ops += x.numel() * step_ops[name]
        if coupled is not None and isinstance(module, coupled) and x.dim() >= 2:
            neuron_ops += (x.numel() - x[:, 0].numel()) * COUPLING_OPS

    def lstm_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        nonlocal lstm_ops
        lstm_ops += output.numel() * LSTM_OPS

    for name, module in model.named_modules():
        if isinstance(module, _SYNAPSES):
            records[name] = _SynapseRecord(name, type(module).__name__)
            hook = partial(synapse_hook, name=name)
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, LIF):
            step_ops[name] = neuron_step_ops(module)
            handles.append(module.register_forward_hook(partial(neuron_hook, name=name)))
        elif isinstance(module, (ConvLSTM, LSTM)):
            handles.append(module.register_forward_hook(lstm_hook))
    n_samples = 0
    try:
        with _inference(model):
            for batch in batches:
                x = _batch_input(batch).to(device)
                n_samples += x.shape[0]
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    if n_samples == 0:
        raise ValueError("batches: no samples to measure")

    layers = []
    macs = acs = dense = active = elements = spike_dense = 0
    for record in records.values():
        if record.calls == 0:
            continue
        spike_fed = record.binary and record.active > 0
        layer_macs = 0 if spike_fed else record.dense_macs
        layer_acs = record.event_acs if spike_fed else 0
        macs += layer_macs
        acs += layer_acs
        dense += record.dense_macs
        if spike_fed:
            active += record.active
            elements += record.elements
            spike_dense += record.dense_macs
        layers.append(
            {
                "name": record.name,
                "type": record.type,
                "calls": record.calls,
                "dense_macs": record.dense_macs,
                "binary_input": spike_fed,
                "silent_input": record.active == 0,
                "input_rate": record.active / record.elements if record.elements else 0.0,
                "macs": layer_macs,
                "acs": layer_acs,
            }
        )
    elementwise = neuron_ops + lstm_ops
    totals = {
        "macs": macs,
        "acs": acs,
        "dense_synaptic_ops": dense,
        "neuron_elementwise": neuron_ops,
        "lstm_elementwise": lstm_ops,
        "elementwise": elementwise,
        "ops": macs + acs + elementwise,
    }
    return {
        **{key: value / n_samples for key, value in totals.items()},
        "spike_rate": active / elements if elements else None,
        "ac_fraction": acs / spike_dense if spike_dense else None,
        "params": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "n_samples": n_samples,
        "totals": totals,
        "layers": layers,
    }


def flop_counter_macs(
    model: nn.Module, batches: Iterable[Any] | Tensor, *, device: str | torch.device = "cpu"
) -> int:
    """Total multiply-accumulates that ``torch.utils.flop_counter.FlopCounterMode`` counts (FLOPs / 2) when
    ``model`` runs over ``batches`` (a tensor or an iterable as in :func:`model_cost`) in IIM, eval mode,
    without gradients. It counts convolutions and matrix products (mm, addmm, bmm, ...) by shape, biases
    excluded; :func:`model_cost`'s ``totals["dense_synaptic_ops"]`` must equal it for a network whose
    matrix products all sit in ``nn.Conv*`` / ``nn.Linear`` modules."""
    if isinstance(batches, Tensor):
        batches = [batches]
    with _inference(model), FlopCounterMode(display=False) as counter:
        for batch in batches:
            model(_batch_input(batch).to(device))
    return counter.get_total_flops() // 2
