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

and the multiplications among them: one per MAC, none per AC (``synaptic_mul``), and the neurons' or gates'
(``elementwise_mul``):

========  ========================  ==================  ===========================================
kind      synaptic multiplications  element-wise muls   element-wise ops by class
========  ========================  ==================  ===========================================
conv2d    ``R*Q``                   0                   0
conv3d    ``U*R*Q``                 0                   0
convlstm  ``4*R*I*J*(K+C)``         ``3*R``             ``3*R`` mul, ``5*R`` add, ``5*R`` non-linear
convliaf  ``R*Q``                   ``3*R``             ``3*R`` mul, ``7*R`` add
convlif   0                         ``3*R``             ``3*R`` mul, ``6*R`` add
========  ========================  ==================  ===========================================

(:data:`TABLE1_FORMULAS` holds these as text; :func:`table1_markdown` renders them. The paper's Table 1 is
an image missing from its text; the synaptic and weight columns follow the paper's description and caption,
the element-wise and multiplication columns are this library's.) ``conv2d`` is a
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
- :func:`model_cost` counts every synapse both ways, dense (every synapse at full rate: ``macs_dense`` of
  analog-fed layers, ``acs_dense`` of spike-fed ones) and zero-skipped (a zero input costs nothing, a
  nonzero one one MAC or AC per synapse it reaches, exactly, edge effects of zero padding included; see
  :func:`event_accumulates`): ``macs_zero_skipped`` and ``acs``. Zero-skipping applies to analog inputs
  too (a ReLU's or LIAF's zeros, ConvLSTM's zero state at ``t = 0``), so that spiking and non-spiking
  networks are compared the same way. ``macs`` (dense) and ``acs`` (zero-skipped) are the historical pair.

**Element-wise operations** per neuron (or hidden element) per step are what this library's code executes at
inference, counted from :func:`bidl.functional.lif_step` and :func:`bidl.ann.lstm_cell` (named constants
below, checked against a dispatch-level count in the tests): LIF 9, LIAF 10, LSTM 13. Each is split into
classes (:class:`OpClasses`): multiplications, additions (add, subtract, compare, select count as one adder
operation each) and non-linear functions (sigmoid, tanh): LIF 3 muls + 6 adds (integrate 1 add, fire 2 adds,
hard reset 2 muls + 2 adds, leak 1 mul + 1 add; the soft reset 1 mul + 1 add), LIAF 3 muls + 7 adds (its
ReLU a compare-and-select), LSTM 3 muls + 5 adds + 5 non-linear (four gate sums, 3 sigmoids, 2 tanhs, the
cell's 3 muls and 1 add).

**Energy.** :func:`energy` weighs the counts by per-operation energies (picojoules, the config's ``energy``
section, e.g. Horowitz, ISSCC 2014, 45 nm 32-bit float: MAC 4.6 = mul 3.7 + add 0.9, AC 0.9): dense (every
synapse at full rate) and zero-skipped (zero inputs skipped at every synapse), both with every element-wise
operation.

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
    "OpClasses",
    "INTEGRATE_SPLIT",
    "FIRE_SPLIT",
    "HARD_RESET_SPLIT",
    "SOFT_RESET_SPLIT",
    "LEAK_SPLIT",
    "LIF_SPLIT",
    "LIAF_SPLIT",
    "ACTIVATION_SPLIT",
    "LIAF_TR_SPLIT",
    "NORM_STATE_SPLIT",
    "COUPLING_SPLIT",
    "LSTM_GATE_SUM_SPLIT",
    "LSTM_CELL_SPLIT",
    "LSTM_SPLIT",
    "ELEMENTWISE_SPLIT",
    "TABLE1_FORMULAS",
    "MULTIPLICATION_KEYS",
    "ENERGY_KEYS",
    "ENERGY_COUNTS",
    "ElementwiseCounter",
    "is_binary",
    "event_accumulates",
    "neuron_step_split",
    "neuron_step_ops",
    "st_layer_cost",
    "build_st_layer",
    "measure_st_layer",
    "figure4_counts",
    "table1_markdown",
    "model_cost",
    "energy",
    "shared_energy_settings",
    "energy_note",
    "flop_counter_macs",
]

KINDS = ("conv2d", "conv3d", "convlstm", "convliaf", "convlif")
"""The ST layers of Table 1."""


# -- element-wise operations per neuron per step, as bidl.functional.lif_step runs them at inference ------
@dataclass(frozen=True)
class OpClasses:
    """Element-wise operations by class: ``mul`` multiplications (multiply, divide), ``add`` additions (add,
    subtract, compare, select, max / min: one adder each) and ``nonlinear`` functions (sigmoid, tanh, exp,
    ...). ``total`` is their sum; instances add and scale by an int (``3 * OpClasses(mul=1)``).

    Example:
        >>> LIF_SPLIT, LIF_SPLIT.total
        (OpClasses(mul=3, add=6, nonlinear=0), 9)
    """

    mul: int = 0
    add: int = 0
    nonlinear: int = 0

    @property
    def total(self) -> int:
        """All operations of the three classes."""
        return self.mul + self.add + self.nonlinear

    def as_dict(self) -> dict[str, int]:
        """``{"mul": ..., "add": ..., "nonlinear": ...}``."""
        return {"mul": self.mul, "add": self.add, "nonlinear": self.nonlinear}

    def __add__(self, other: OpClasses) -> OpClasses:
        if not isinstance(other, OpClasses):
            return NotImplemented
        return OpClasses(self.mul + other.mul, self.add + other.add, self.nonlinear + other.nonlinear)

    def __mul__(self, factor: int) -> OpClasses:
        if not isinstance(factor, int) or isinstance(factor, bool):
            return NotImplemented
        return OpClasses(self.mul * factor, self.add * factor, self.nonlinear * factor)

    __rmul__ = __mul__


INTEGRATE_SPLIT = OpClasses(add=1)
"""``U = X + V``: one add."""
FIRE_SPLIT = OpClasses(add=2)
"""``F = 1[U - theta > 0]``: the surrogate spike function subtracts theta (one sub) and compares with 0 (one
compare), both additions; the cast of the boolean to the float dtype is a conversion, not an operation."""
HARD_RESET_SPLIT = OpClasses(mul=2, add=2)
"""``R = F*v_reset + (1 - F)*U``: two muls, one sub (``1 - F``) and one add."""
SOFT_RESET_SPLIT = OpClasses(mul=1, add=1)
"""RMP ``R = U - F*theta``: one mul, one sub."""
LEAK_SPLIT = OpClasses(mul=1, add=1)
"""``V = alpha*R + beta``: one mul, one add."""
LIF_SPLIT = INTEGRATE_SPLIT + FIRE_SPLIT + HARD_RESET_SPLIT + LEAK_SPLIT
"""A LIF neuron with the hard reset (the default) per step: 3 muls (reset 2, leak 1) and 6 adds (integrate
1, fire 2, reset 2, leak 1). The soft reset makes it 2 muls and 5 adds."""
ACTIVATION_SPLIT: dict[str, OpClasses] = {
    "relu": OpClasses(add=1),
    "sigmoid": OpClasses(nonlinear=1),
    "tanh": OpClasses(nonlinear=1),
    "identity": OpClasses(),
}
"""LIAF's analog readout ``act(.)`` per neuron and step: ReLU is ``max(x, 0)``, a compare-and-select (one
addition); sigmoid and tanh one non-linear function each; the identity executes nothing."""
LIAF_TR_SPLIT = OpClasses(add=1)
"""LIAF's ``"TR"`` mode reads ``act(U - theta)``: one more sub."""
LIAF_SPLIT = LIF_SPLIT + ACTIVATION_SPLIT["relu"]
"""LIF's 3 muls and 6 adds and the ReLU readout (one add; the default NTR mode, ``pre_reset`` or
``post_leak`` the same): 3 muls, 7 adds."""
NORM_STATE_SPLIT = OpClasses(mul=1, add=1)
"""BatchNorm on the membrane ("norm_state") at inference: the affine ``a*U + b``, one mul and one add."""
COUPLING_SPLIT = OpClasses(add=1)
"""Jester v2's electrically coupled LIAF adds the coupling current ``K * V_{t-1}`` to ``X_t`` (one add per
neuron from the second step on; the coupling conv itself is a synapse, counted as MACs)."""
LSTM_GATE_SUM_SPLIT = OpClasses(add=4)
"""ConvLSTM / LSTM: ``W_x * X + W_h * H`` for the four gates, one add per gate and hidden element."""
LSTM_CELL_SPLIT = OpClasses(mul=3, add=1, nonlinear=5)
""":func:`bidl.ann.lstm_cell` per hidden element: ``c = sigmoid(f)*c + sigmoid(i)*tanh(g)`` (2 muls, 1 add,
2 sigmoids and a tanh) and ``h = sigmoid(o)*tanh(c)`` (1 mul, a sigmoid and a tanh): 3 muls, 1 add, 5
non-linear functions."""
LSTM_SPLIT = LSTM_GATE_SUM_SPLIT + LSTM_CELL_SPLIT
"""Per hidden element and step: 3 muls, 5 adds, 5 non-linear functions."""

INTEGRATE_OPS = INTEGRATE_SPLIT.total
"""1: :data:`INTEGRATE_SPLIT`'s operations."""
FIRE_OPS = FIRE_SPLIT.total
"""2: :data:`FIRE_SPLIT`'s operations."""
HARD_RESET_OPS = HARD_RESET_SPLIT.total
"""4: :data:`HARD_RESET_SPLIT`'s operations."""
SOFT_RESET_OPS = SOFT_RESET_SPLIT.total
"""2: :data:`SOFT_RESET_SPLIT`'s operations."""
LEAK_OPS = LEAK_SPLIT.total
"""2: :data:`LEAK_SPLIT`'s operations."""
LIF_OPS = LIF_SPLIT.total
"""9: a LIF neuron with the hard reset (the default) per step. The soft reset makes it 7. (A chip's fused
built-ins ``cmp_and_fire`` and ``reset_with_decay`` need 5: add, compare, select, mul, add.)"""
ACTIVATION_OPS: dict[str, int] = {name: split.total for name, split in ACTIVATION_SPLIT.items()}
"""LIAF's analog readout ``act(.)`` per neuron and step (the identity executes nothing)."""
LIAF_TR_OPS = LIAF_TR_SPLIT.total
"""1: :data:`LIAF_TR_SPLIT`'s operation."""
LIAF_OPS = LIAF_SPLIT.total
"""10: LIF's 9 and the ReLU readout (the default NTR mode; ``pre_reset`` or ``post_leak``, the same)."""
NORM_STATE_OPS = NORM_STATE_SPLIT.total
"""2: BatchNorm on the membrane at inference (:data:`NORM_STATE_SPLIT`)."""
COUPLING_OPS = COUPLING_SPLIT.total
"""1: the coupling add of an electrically coupled LIAF (:data:`COUPLING_SPLIT`)."""
LSTM_GATE_SUM_OPS = LSTM_GATE_SUM_SPLIT.total
"""4: the gate sums of ConvLSTM / LSTM (:data:`LSTM_GATE_SUM_SPLIT`)."""
LSTM_CELL_OPS = LSTM_CELL_SPLIT.total
"""9: :func:`bidl.ann.lstm_cell` per hidden element (:data:`LSTM_CELL_SPLIT`)."""
LSTM_OPS = LSTM_SPLIT.total
"""13 element-wise operations per hidden element and step."""
NEURON_CONSTANTS = 4
"""alpha, beta, theta, v_reset: one each per layer (ASM) or per channel (CSM)."""

ELEMENTWISE_SPLIT: dict[str, OpClasses] = {
    "conv2d": OpClasses(),
    "conv3d": OpClasses(),
    "convlstm": LSTM_SPLIT,
    "convliaf": LIAF_SPLIT,
    "convlif": LIF_SPLIT,
}
"""Element-wise operations by class per output element (``R`` of them) of each Table 1 kind."""

ELEMENTWISE_OPS: dict[str, int] = {kind: split.total for kind, split in ELEMENTWISE_SPLIT.items()}
"""Element-wise operations per output element (``R`` of them) of each Table 1 kind."""


def _per_r(count: int) -> str:
    """``n·R`` in Table 1's notation (``0`` and ``R`` for 0 and 1)."""
    return "0" if count == 0 else "R" if count == 1 else f"{count}·R"


def _split_text(split: OpClasses) -> str:
    """An element-wise split per output element in Table 1's notation, e.g. ``3·R mul + 6·R add``."""
    parts = [
        f"{_per_r(count)} {label}"
        for label, count in (("mul", split.mul), ("add", split.add), ("non-linear", split.nonlinear))
        if count
    ]
    return " + ".join(parts) or "0"


_NEURON_BIASES = f"C (+ {NEURON_CONSTANTS} neuron constants; {NEURON_CONSTANTS}·C per channel)"
_SYNAPTIC_TEXT = {
    "conv2d": ("R·Q", "Q·C", "C"),
    "conv3d": ("U·R·Q", "U·Q·C", "C"),
    "convlstm": ("4·R·(Q + I·J·C)", "4·C·(Q + I·J·C)", "4·C"),
    "convliaf": ("R·Q", "Q·C", _NEURON_BIASES),
    "convlif": ("R·Q", "Q·C", _NEURON_BIASES),
}


def _table1_formulas(kind: str) -> dict[str, str]:
    synaptic, weights, biases = _SYNAPTIC_TEXT[kind]
    split = ELEMENTWISE_SPLIT[kind]
    accumulates = kind == "convlif"  # Table 1's setting: only ConvLIF is fed spikes
    synaptic_mul = "0" if accumulates else synaptic
    elementwise_mul = _per_r(split.mul)
    if split.mul == 0:
        multiplications = synaptic_mul
    elif accumulates:
        multiplications = elementwise_mul
    else:
        multiplications = f"{synaptic_mul} + {elementwise_mul}"
    return {
        "synaptic": f"{synaptic} {'ACs' if accumulates else 'MACs'}",
        "elementwise": _per_r(split.total),
        "ops": synaptic if split.total == 0 else f"{synaptic} + {_per_r(split.total)}",
        "synaptic_mul": synaptic_mul,
        "elementwise_mul": elementwise_mul,
        "multiplications": multiplications,
        "elementwise_split": _split_text(split),
        "weights": weights,
        "biases": biases,
    }


TABLE1_FORMULAS: dict[str, dict[str, str]] = {kind: _table1_formulas(kind) for kind in KINDS}
"""Table 1 in the paper's notation (``R = T·H·W·C``, ``Q = I·J·K``): per kind the synaptic operations, the
element-wise operations, their sum ``ops``, the multiplications (``synaptic_mul``: one per MAC, none for an
AC; ``elementwise_mul``: the neurons' or gates'; ``multiplications``: their sum), the element-wise operations
by class (``elementwise_split``), the weights (no biases) and the biases."""

LAYER_NAMES = {
    "conv2d": "Conv2D",
    "conv3d": "Conv3D",
    "convlstm": "ConvLSTM",
    "convliaf": "ConvLIAF",
    "convlif": "ConvLIF",
}

_SYNAPSES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}  # activation modules (exact types)

# aten ops counted as element-wise operations (in-place variants too), by class: multiplications (multiply,
# divide, the fused multiply-adds addcmul / addcdiv / lerp: one op each), additions (add, subtract, compare,
# select, max / min, ReLU-like clamps) and non-linear functions. Views, copies, casts, fills, zeros,
# concatenation, padding, reductions are not counted.
_ATEN_CLASSES: dict[str, str] = {
    **dict.fromkeys(("mul", "div", "reciprocal", "addcmul", "addcdiv", "lerp", "leaky_relu"), "mul"),
    **dict.fromkeys(
        (
            "add",
            "sub",
            "rsub",
            "neg",
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
            "logical_and",
            "logical_or",
            "logical_not",
        ),
        "add",
    ),
    **dict.fromkeys(
        ("sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "pow", "elu", "gelu", "silu", "softplus"),
        "nonlinear",
    ),
}
_ELEMENTWISE_ATEN = frozenset(_ATEN_CLASSES)


def _classify(by_op: dict[str, int]) -> OpClasses:
    """Element-wise operation counts per aten op name (:class:`ElementwiseCounter`'s ``by_op``) by class."""
    classes = {"mul": 0, "add": 0, "nonlinear": 0}
    for name, count in by_op.items():
        classes[_ATEN_CLASSES[name]] += count
    return OpClasses(**classes)


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
        ``ops`` (``synaptic_ops + elementwise``), the keys of :data:`MULTIPLICATION_KEYS`
        (``synaptic_mul``: one per MAC; ``elementwise_mul``, ``elementwise_add``,
        ``elementwise_nonlinear``: the element-wise operations by class; ``multiplications``:
        ``synaptic_mul + elementwise_mul``), ``weights`` (synaptic, no biases), ``biases``,
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
    split = ELEMENTWISE_SPLIT[kind] * R
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
        "elementwise": split.total,
        "ops": macs + acs + split.total,
        **_multiplication_counts(macs, split),
        "weights": weights,
        "biases": biases,
        "neuron_params": neuron_params,
        "params": weights + biases + neuron_params,
        "formulas": dict(TABLE1_FORMULAS[kind]),
    }


MULTIPLICATION_KEYS = (
    "synaptic_mul",
    "elementwise_mul",
    "elementwise_add",
    "elementwise_nonlinear",
    "multiplications",
)
"""The operation-class counts of :func:`st_layer_cost` and :func:`measure_st_layer`."""


def _multiplication_counts(macs: int, split: OpClasses) -> dict[str, int]:
    """A layer's multiplications: one per MAC (an AC has none) and the element-wise ones, with the
    element-wise additions and non-linear functions."""
    return {
        "synaptic_mul": macs,
        "elementwise_mul": split.mul,
        "elementwise_add": split.add,
        "elementwise_nonlinear": split.nonlinear,
        "multiplications": macs + split.mul,
    }


def table1_markdown() -> str:
    """Table 1 as a markdown table in the paper's notation (``R = T·H·W·C``, ``Q = I·J·K``)."""
    lines = [
        "| layer | synaptic ops | element-wise ops | synaptic muls | element-wise muls | weights | biases |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        f = TABLE1_FORMULAS[kind]
        cells = (
            LAYER_NAMES[kind],
            f["synaptic"],
            f"{f['elementwise']} ({f['elementwise_split']})" if f["elementwise"] != "0" else "0",
            f["synaptic_mul"],
            f["elementwise_mul"],
            f["weights"],
            f["biases"],
        )
        lines.append("| " + " | ".join(cells) + " |")
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
        by_op: the same per aten op name (:meth:`split` groups them by class).
        paused: while true, nothing is counted (see :meth:`pause`).

    Example:
        >>> with ElementwiseCounter() as counter:
        ...     _ = torch.ones(3) * 2 + 1
        >>> counter.total, dict(counter.by_op), counter.split()
        (6, {'mul': 3, 'add': 3}, OpClasses(mul=3, add=3, nonlinear=0))
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

    def split(self) -> OpClasses:
        """The counted operations by class (multiplications, additions, non-linear functions)."""
        return _classify(self.by_op)

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
    """Exact zero-skipped synaptic operations of a conv or linear layer on an input ``x``: the number of
    (nonzero input, output) pairs connected by a synapse. On a binary (spike) input these are the event-driven
    accumulates; on any other input the multiply-accumulates left when every zero input is skipped.

    Linear: ``count_nonzero(x) * out_features``. Conv: the same conv (stride, padding, dilation, groups) run
    on the nonzero mask of ``x`` with an all-ones kernel of one output channel per group gives, at each
    output position, the number of nonzero inputs in its receptive field; summed and multiplied by the output
    channels per group. Zero padding contributes nothing, so a spike at the border reaches fewer outputs than
    one inside: exact, edge effects included (unlike ``dense MACs x firing rate``).
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
    x = (x != 0).to(torch.float64)
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


def _lifplus_probe_split(neuron: LIFPlus) -> OpClasses:
    """Element-wise operations per neuron of one LIF+ step by class, counted on a probe (LIF+'s stage modes
    make many combinations): :func:`~bidl.functional.lifplus_step` on ``[1, channels]`` from the zero state,
    without the membrane norm (counted apart) and without training noise."""
    from .functional import lifplus_step

    width = neuron.channels if neuron.sharing == "channel" else 1
    kwargs = neuron._step_kwargs(2)
    kwargs.update(norm=None, noise=0.0)
    x = torch.full((1, width), 0.25, dtype=neuron.alpha.dtype, device=neuron.alpha.device)
    with torch.no_grad(), ElementwiseCounter() as counter:
        lifplus_step(x, None, **kwargs)
    split = counter.split()
    return OpClasses(split.mul // x.numel(), split.add // x.numel(), split.nonlinear // x.numel())


def neuron_step_split(neuron: LIF) -> OpClasses:
    """Element-wise operations by class per neuron per step of a LIF / LIAF / LIF+ module at inference.

    LIF: :data:`LIF_SPLIT` (hard reset: 3 muls, 6 adds) or with :data:`SOFT_RESET_SPLIT` (2 muls, 5 adds);
    LIAF adds its activation (:data:`ACTIVATION_SPLIT`) and, in ``"TR"`` mode, :data:`LIAF_TR_SPLIT`;
    BatchNorm on the membrane adds :data:`NORM_STATE_SPLIT`. LIF+ is counted on a probe step; with every
    stage at its default it is LIF's. The coupling add of an electrically coupled LIAF is not included (it
    skips the first step; see :func:`model_cost`).
    """
    if not isinstance(neuron, LIF):
        raise TypeError(
            f"neuron_step_ops: expects a LIF, LIAF or LIFPlus module, got {type(neuron).__name__}"
        )
    if isinstance(neuron, LIFPlus):
        split = _lifplus_probe_split(neuron)
    else:
        reset = HARD_RESET_SPLIT if neuron.reset == "hard" else SOFT_RESET_SPLIT
        split = INTEGRATE_SPLIT + FIRE_SPLIT + reset + LEAK_SPLIT
        if isinstance(neuron, LIAF):
            split += ACTIVATION_SPLIT[neuron.activation]
            if neuron.liaf_mode == "TR":
                split += LIAF_TR_SPLIT
    if neuron.norm is not None:
        split += NORM_STATE_SPLIT
    return split


def neuron_step_ops(neuron: LIF) -> int:
    """Element-wise operations per neuron per step of a LIF / LIAF / LIF+ module at inference: the total of
    :func:`neuron_step_split` (LIF 9, soft reset 7, LIAF 10, BatchNorm on the membrane 2 more)."""
    return neuron_step_split(neuron).total


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
    - element-wise operations: :class:`ElementwiseCounter`, by class from the aten op names (``mul``,
      ``div``: multiplications; ``add``, ``sub``, ``gt``, ``where``, ``relu``, ...: additions; ``sigmoid``,
      ``tanh``, ...: non-linear); synaptic multiplications: one per MAC.
    - weights, biases, neuron constants: the layer's parameters and buffers.

    Args:
        spike_input: binary input (Bernoulli spikes of probability ``rate``) or analog (uniform in
            ``[0.1, 1.1)``, never 0 or 1). Default as :func:`st_layer_cost`.
        seed: the input's random seed.

    Returns:
        The keys of :func:`st_layer_cost` (without ``formulas``, ``R``, ``Q``; the multiplications and
        element-wise classes of :data:`MULTIPLICATION_KEYS` included) and ``flop_counter_macs``
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
    split = _classify(by_op)
    return {
        "kind": kind,
        "layer": type(layer).__name__,
        "macs": macs,
        "acs": acs,
        "synaptic_ops": macs + acs,
        "elementwise": split.total,
        "ops": macs + acs + split.total,
        **_multiplication_counts(macs, split),
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
    nonzero_pairs: int = 0


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

    - dense synaptic operations from the shapes: ``out.numel() * in_channels/groups * prod(kernel)`` (conv),
      ``out.numel() * in_features`` (linear); biases excluded, as ``FlopCounterMode`` (see
      :func:`flop_counter_macs`, which the tests check this against);
    - zero-skipped synaptic operations: the (nonzero input, output) pairs (:func:`event_accumulates`,
      exact, for every input);
    - whether the input is binary (:func:`is_binary`) and its nonzero fraction.

    A layer whose every input (over all calls) is binary and that received at least one spike is spike-fed:
    its synaptic operations are accumulates (ACs: ``acs_dense`` at firing rate 1, ``acs`` with the zeros
    skipped, the event-driven count). Any other layer is analog-fed and does MACs (``macs_dense``, and
    ``macs_zero_skipped`` with the zero inputs skipped: a ReLU's or LIAF's zeros, ConvLSTM's zero state at
    ``t = 0``). That includes a layer that only ever saw zeros (``silent_input``: a dead spiking layer and a
    dead ReLU / LIAF layer look alike; dense MACs, no zero-skipped ones), and a layer whose input is binary at
    some calls only (ConvLSTM's hidden conv sees the zero state at ``t = 0`` and analog states after).

    Neurons (forward hooks on every LIF / LIAF / LIF+ module) cost ``neurons x steps x``
    :func:`neuron_step_split` (neurons and steps from the module's input ``[B, T, ...]``), plus
    :data:`COUPLING_SPLIT` per neuron and step after the first for electrically coupled neurons; ConvLSTM /
    LSTM layers cost :data:`LSTM_SPLIT` per hidden element and step (their output's size); activation modules
    (``nn.ReLU``, ``nn.Sigmoid``, ``nn.Tanh``: a non-spiking network's neurons) :data:`ACTIVATION_SPLIT` per
    output element. Element-wise operations are never skipped: every neuron updates at every step.

    Not counted (see the module docstring): bias additions, BatchNorm on synaptic currents or inputs (folds
    into the synapse), residual sums, pooling, temporal aggregation, dropout, embedding lookups (0 MACs).

    Args:
        model: the network, already on ``device``.
        batches: an iterable of input tensors ``[B, T, ...]`` or of ``(x, ...)`` tuples (a data loader).
        device: where the inputs are moved.

    Returns:
        A dict with, per sample (floats):

        - synapses: ``macs_dense`` (analog-fed, every synapse), ``macs_zero_skipped`` (analog-fed, zero
          inputs skipped), ``acs_dense`` (spike-fed, every synapse), ``acs`` (spike-fed, zero inputs
          skipped); ``macs`` (= ``macs_dense``, the dense count of analog-fed synapses) and
          ``dense_synaptic_ops`` (``macs_dense + acs_dense``);
        - element-wise: ``neuron_elementwise``, ``lstm_elementwise``, ``activation_elementwise``,
          ``elementwise`` (their sum), and by
          class ``elementwise_mul``, ``elementwise_add``, ``elementwise_nonlinear`` (their sum is
          ``elementwise``);
        - operation classes: ``multiplications`` (``macs_dense + elementwise_mul``: one multiply per MAC, none
          per AC), ``multiplications_zero_skipped`` (``macs_zero_skipped + elementwise_mul``), ``additions``
          (``macs_dense + acs_dense + elementwise_add``: the add of every MAC and every AC),
          ``additions_zero_skipped`` (``macs_zero_skipped + acs + elementwise_add``), ``nonlinear``
          (``elementwise_nonlinear``);
        - ``ops``: ``macs + acs + elementwise`` (dense MACs, zero-skipped ACs);

        and ``spike_rate`` (active inputs / input elements over the spike-fed layers: their firing rates
        weighted by input size; ``None`` without spike-fed layers), ``ac_fraction`` (ACs / dense synaptic
        operations of the spike-fed layers: their rate weighted by synapses; ``None`` without), ``params``
        (all parameters), ``params_trainable``, ``n_samples``, ``totals`` (the operation counts summed over
        all samples, ints) and ``layers``: per synapse module, totals over all samples, ``name``, ``type``,
        ``calls``, ``dense_macs`` (dense synaptic operations, MACs or ACs), ``zero_skipped`` (the same with
        zero inputs skipped), ``binary_input`` (spike-fed), ``silent_input`` (only zeros), ``input_rate``
        (nonzero fraction), ``macs`` (dense, analog-fed), ``macs_zero_skipped``, ``acs`` (spike-fed,
        zero-skipped), ``acs_dense``.
    """
    records: dict[str, _SynapseRecord] = {}
    neuron_ops = lstm_ops = activation_ops = OpClasses()
    handles = []
    coupled = _coupled_type()
    step_split: dict[str, OpClasses] = {}

    def synapse_hook(module: nn.Module, inputs: tuple, output: Tensor, name: str) -> None:
        record = records[name]
        x = inputs[0]
        record.calls += 1
        record.dense_macs += _dense_macs(module, output)
        record.elements += x.numel()
        record.active += int(torch.count_nonzero(x))
        record.nonzero_pairs += event_accumulates(module, x)
        if record.binary:
            record.binary = is_binary(x)

    def neuron_hook(module: nn.Module, inputs: tuple, output: Tensor, name: str) -> None:
        nonlocal neuron_ops
        x = inputs[0]
        neuron_ops += x.numel() * step_split[name]
        if coupled is not None and isinstance(module, coupled) and x.dim() >= 2:
            neuron_ops += (x.numel() - x[:, 0].numel()) * COUPLING_SPLIT

    def lstm_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        nonlocal lstm_ops
        lstm_ops += output.numel() * LSTM_SPLIT

    def activation_hook(module: nn.Module, inputs: tuple, output: Tensor, split: OpClasses) -> None:
        nonlocal activation_ops
        activation_ops += output.numel() * split

    for name, module in model.named_modules():
        if isinstance(module, _SYNAPSES):
            records[name] = _SynapseRecord(name, type(module).__name__)
            hook = partial(synapse_hook, name=name)
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, LIF):
            step_split[name] = neuron_step_split(module)
            handles.append(module.register_forward_hook(partial(neuron_hook, name=name)))
        elif isinstance(module, (ConvLSTM, LSTM)):
            handles.append(module.register_forward_hook(lstm_hook))
        elif type(module) in _ACTIVATIONS:
            split = ACTIVATION_SPLIT[_ACTIVATIONS[type(module)]]
            handles.append(module.register_forward_hook(partial(activation_hook, split=split)))
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
    macs = macs_skipped = acs = acs_dense = active = elements = 0
    for record in records.values():
        if record.calls == 0:
            continue
        spike_fed = record.binary and record.active > 0
        layer = {
            "macs": 0 if spike_fed else record.dense_macs,
            "macs_zero_skipped": 0 if spike_fed else record.nonzero_pairs,
            "acs": record.nonzero_pairs if spike_fed else 0,
            "acs_dense": record.dense_macs if spike_fed else 0,
        }
        macs += layer["macs"]
        macs_skipped += layer["macs_zero_skipped"]
        acs += layer["acs"]
        acs_dense += layer["acs_dense"]
        if spike_fed:
            active += record.active
            elements += record.elements
        layers.append(
            {
                "name": record.name,
                "type": record.type,
                "calls": record.calls,
                "dense_macs": record.dense_macs,
                "zero_skipped": record.nonzero_pairs,
                "binary_input": spike_fed,
                "silent_input": record.active == 0,
                "input_rate": record.active / record.elements if record.elements else 0.0,
                **layer,
            }
        )
    split = neuron_ops + lstm_ops + activation_ops
    totals = {
        "macs": macs,
        "acs": acs,
        "dense_synaptic_ops": macs + acs_dense,
        "neuron_elementwise": neuron_ops.total,
        "lstm_elementwise": lstm_ops.total,
        "activation_elementwise": activation_ops.total,
        "elementwise": split.total,
        "ops": macs + acs + split.total,
        "macs_dense": macs,
        "macs_zero_skipped": macs_skipped,
        "acs_dense": acs_dense,
        "elementwise_mul": split.mul,
        "elementwise_add": split.add,
        "elementwise_nonlinear": split.nonlinear,
        "multiplications": macs + split.mul,
        "multiplications_zero_skipped": macs_skipped + split.mul,
        "additions": macs + acs_dense + split.add,
        "additions_zero_skipped": macs_skipped + acs + split.add,
        "nonlinear": split.nonlinear,
    }
    return {
        **{key: value / n_samples for key, value in totals.items()},
        "spike_rate": active / elements if elements else None,
        "ac_fraction": acs / acs_dense if acs_dense else None,
        "params": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "n_samples": n_samples,
        "totals": totals,
        "layers": layers,
    }


ENERGY_KEYS = ("mac_pj", "ac_pj", "mul_pj", "add_pj", "nonlinear_pj")
"""The per-operation energies (picojoules) :func:`energy` reads: a multiply-accumulate, an accumulate, an
element-wise multiplication, addition and non-linear function."""

ENERGY_COUNTS = (
    "macs_dense",
    "macs_zero_skipped",
    "acs_dense",
    "acs",
    "elementwise_mul",
    "elementwise_add",
    "elementwise_nonlinear",
)
"""The operation counts of :func:`model_cost` that :func:`energy` reads."""


def _per_op_energies(per_op: Any) -> dict[str, float]:
    if not hasattr(per_op, "get"):
        raise TypeError(f"per_op: expected a mapping of {ENERGY_KEYS}, got {type(per_op).__name__}")
    values = {}
    for key in ENERGY_KEYS:
        value = per_op.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"per_op: {key} must be a positive number of picojoules, got {value!r}")
        values[key] = float(value)
    return values


def energy(counts: dict[str, Any], per_op: dict[str, Any]) -> dict[str, Any]:
    """Energy per sample in picojoules from :func:`model_cost`'s operation counts and per-operation energies.

    - dense: every synapse at full rate, ``macs_dense * mac_pj + acs_dense * ac_pj`` (MACs for analog-fed
      synapses, ACs for spike-fed ones);
    - zero-skipped: zero inputs skipped at every synapse, ``macs_zero_skipped * mac_pj + acs * ac_pj``;

    both plus the element-wise operations, which no input skips: ``elementwise_mul * mul_pj +
    elementwise_add * add_pj + elementwise_nonlinear * nonlinear_pj``.

    Args:
        counts: a :func:`model_cost` result (per sample) or its ``totals`` (then the energy is the total):
            the keys of :data:`ENERGY_COUNTS`.
        per_op: picojoules per operation, the keys of :data:`ENERGY_KEYS` (e.g. the config's ``energy``
            section; other keys such as ``source`` are ignored).

    Returns:
        ``dense_pj``, ``zero_skipped_pj``, and ``dense`` / ``zero_skipped``: the same by operation (``macs``,
        ``acs``, ``elementwise_mul``, ``elementwise_add``, ``elementwise_nonlinear``), picojoules.

    Example:
        >>> per_op = dict(mac_pj=4.6, ac_pj=0.9, mul_pj=3.7, add_pj=0.9, nonlinear_pj=4.6)
        >>> counts = dict(macs_dense=10, macs_zero_skipped=4, acs_dense=20, acs=5, elementwise_mul=3,
        ...               elementwise_add=6, elementwise_nonlinear=0)
        >>> result = energy(counts, per_op)
        >>> round(result["dense_pj"], 6), round(result["zero_skipped_pj"], 6)
        (80.5, 39.4)
    """
    pj = _per_op_energies(per_op)
    missing = [key for key in ENERGY_COUNTS if key not in counts]
    if missing:
        raise ValueError(
            f"counts: missing {missing}; expected a bidl.cost.model_cost result (or its totals) with "
            f"{ENERGY_COUNTS}"
        )
    elementwise = {
        "elementwise_mul": counts["elementwise_mul"] * pj["mul_pj"],
        "elementwise_add": counts["elementwise_add"] * pj["add_pj"],
        "elementwise_nonlinear": counts["elementwise_nonlinear"] * pj["nonlinear_pj"],
    }
    dense = {
        "macs": counts["macs_dense"] * pj["mac_pj"],
        "acs": counts["acs_dense"] * pj["ac_pj"],
        **elementwise,
    }
    skipped = {
        "macs": counts["macs_zero_skipped"] * pj["mac_pj"],
        "acs": counts["acs"] * pj["ac_pj"],
        **elementwise,
    }
    return {
        "dense_pj": sum(dense.values()),
        "zero_skipped_pj": sum(skipped.values()),
        "dense": dense,
        "zero_skipped": skipped,
    }


def shared_energy_settings(
    costs: dict[str, dict[str, Any]], config_energy: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The per-operation energies, source and note that every network's cost record (a ``cost.json`` of the
    cost rule: a :func:`model_cost` result with an ``energy`` entry) was computed with; ``None`` where none
    has energy (the config has no ``energy`` section).

    Args:
        costs: per network name its cost record.
        config_energy: the config's ``energy`` section, if any: the records must have been computed with its
            figures (else they are stale: the cost rule re-measures on a change of the figures).

    Raises:
        ValueError: a record without the zero-skipped counts or the energy entry (written before they were
            counted), records computed with different figures, or figures other than ``config_energy``'s;
            each names the networks.
    """
    stale = sorted(
        name for name, cost in costs.items() if "macs_zero_skipped" not in cost or "energy" not in cost
    )
    if stale:
        raise ValueError(
            f"cost records of {stale} have no zero-skipped counts or energy (written by an older bidl.cost): "
            "rerun their cost rule"
        )
    settings = {
        name: {key: cost["energy"][key] for key in ("per_op", "source", "note")}
        for name, cost in costs.items()
        if cost["energy"] is not None
    }
    if not settings:
        if config_energy is not None:
            raise ValueError(
                f"cost records of {sorted(costs)} have no energy but the config has an energy section: rerun "
                "their cost rule"
            )
        return None
    if len(settings) != len(costs):
        raise ValueError(
            f"cost records of {sorted(set(costs) - set(settings))} have no energy, those of "
            f"{sorted(settings)} do: rerun the cost rule of the first"
        )
    first_name, first = next(iter(settings.items()))
    differing = sorted(name for name, entry in settings.items() if entry["per_op"] != first["per_op"])
    if differing:
        raise ValueError(
            f"cost records of {differing} were computed with other per-operation energies than "
            f"{first_name!r}'s ({first['per_op']}): rerun their cost rule"
        )
    if config_energy is not None:
        expected = {key: config_energy.get(key) for key in ENERGY_KEYS}
        if expected != first["per_op"]:
            raise ValueError(
                f"cost records were computed with the per-operation energies {first['per_op']}, the config's "
                f"energy section gives {expected}: rerun the cost rule"
            )
    return first


def energy_note(settings: dict[str, Any] | None) -> str:
    """A table note stating the per-operation energies of :func:`shared_energy_settings`, their source and
    note, and how dense and zero-skipped energy are counted; ``None`` (no energy section): says so."""
    if settings is None:
        return "Energy: not computed (no energy section in the config)."
    pj = settings["per_op"]
    note = (
        f"Energy per sample = operations x energy per operation ({settings['source']}): "
        f"MAC {pj['mac_pj']} pJ, AC {pj['ac_pj']} pJ, element-wise multiplication {pj['mul_pj']} pJ, "
        f"addition (add, subtract, compare, select) {pj['add_pj']} pJ, non-linear function (sigmoid, tanh) "
        f"{pj['nonlinear_pj']} pJ. Dense: every synapse at full rate (MACs of analog-fed synapses, ACs of "
        "spike-fed ones); zero-skipped: every zero input skipped, analog or spike (a ReLU's or LIAF's zeros "
        "as a silent neuron's); both with every neuron's and gate's element-wise operations "
        "(bidl.cost.energy). Memory access is not counted."
    )
    if settings.get("note"):
        note += f" {settings['note'].strip()}"
    return note


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
