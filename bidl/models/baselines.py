"""Conventional spatio-temporal baselines for the paper's networks (paper Table 3): for every dataset family a
Conv3D network of similar depth and a ConvLSTM network of similar width (an LSTM for IMDB), trained side by
side with the paper's network on the same data.

Every builder takes the same *structural* keyword arguments as the paper's builder it mirrors, with the
paper's full-size defaults (``channels``, ``hidden``, ``height``, ``width``, ``in_channels``, ``n_classes``,
``aggregation``, ``head_per_step``, ``widths``, ``blocks``, ``vocab_size``, ``embedding_dim``, ``dropout``,
``iteration``). Those defaults and the fixed kernels and strides are the constants the paper network's
module declares (``CHANNELS``, ``KERNELS``, ``STRIDES``, ``N_CLASSES``, ... of :mod:`bidl.models.dvs128`,
:mod:`~bidl.models.rgb_gesture`, :mod:`~bidl.models.cifar10_dvs`, :mod:`~bidl.models.luna16`,
:mod:`~bidl.models.resnet`, :mod:`~bidl.models.imdb`), so each architecture is declared once and a change
there changes the paper network and its baselines together. An experiment's ``model_kwargs`` less its neuron
keywords (:func:`structural_kwargs`, :data:`NEURON_KEYWORDS`) build the baseline. Neuron keywords raise
``TypeError`` naming them. :data:`BASELINES` maps each paper builder (and its ``_authors`` variant) to its
baselines; the baselines mirror the *paper* builders' structure (``cifar10_dvs``'s temporal sum before the
head, not the authors' per-step head).

Inputs and outputs are those of the paper network of the same dataset: ``[B, T, C, H, W]`` float frames
(``[B, L]`` int64 tokens for IMDB) -> ``[B, n_classes]`` logits, in IIM; one step per call in EIM
(``[B, C, H, W]`` / ``[B]``) after :func:`bidl.reset_states`, the output after the last step equal to the
IIM output. The layers come from :mod:`bidl.ann` (:class:`~bidl.ann.CausalConv3d`,
:class:`~bidl.ann.ConvLSTM`, :class:`~bidl.ann.LSTM`) and :mod:`bidl.layers` (:class:`TimeDistributed`,
:class:`TemporalAggregation`), which all switch with :func:`bidl.state.set_iteration_mode`, so
:func:`bidl.evaluation.evaluate_model` runs on them unchanged.

**Conv3D, similar depth.** The paper network with each ConvLIF (ConvLIAF) replaced by
``CausalConv3d(U=3, same spatial kernel, stride, padding) -> BatchNorm -> ReLU``: the same number of conv
layers, the same widths, pooling, FC head (ReLU in place of the spiking neurons), temporal aggregation and
readout. The temporal window is *causal* (output ``t`` sees frames ``t-2 .. t``, zero frames before the
first), so the network streams in EIM holding the last two input frames of each layer; each conv has
``U = 3`` times the weights and the multiply-accumulates of the time-distributed Conv2D it replaces (its bias
and BatchNorm are the same size). Depth is the number of conv layers (3 / 5 / 3 / 20 for DVS128 / CIFAR10-DVS
/ Luna16 / Jester).

**ConvLSTM, similar width.** The same stack with each ConvLIF replaced by a
``ConvLSTM(hidden channels = the ConvLIF's channels, same kernel and stride)`` (Shi et al. 2015, four gates,
input and hidden convolutions; BatchNorm on the input convolution's gate pre-activations, ``norm=True``, the
place the paper networks put theirs: without it the DVS128 and Luna16 ConvLSTMs did not learn at all with the
paper networks' recipes, loss flat at ln(classes) for every epoch), the same pooling, head, aggregation and
readout. Width is the number of channels of each state (hidden) map; a
ConvLSTM layer has ``4 (K + C) / K`` times the weights of the ConvLIF of width ``C`` on ``K`` input channels.

The networks, per family (``c`` = ``channels`` / ``widths``; the paper network's structure in brackets):

- DVS128 Gesture / RGB-gesture (:func:`dvs128_gesture_conv3d`, :func:`dvs128_gesture_convlstm`,
  :func:`rgb_gesture_conv3d`, :func:`rgb_gesture_convlstm`; [BN(2) + 3 ConvLIF k3 s2 + FCLIF + FCLIF, mean
  spike rate]): ``BN(2) -> 3 x {Conv3D(3x3x3, s2) -> BN -> ReLU | ConvLSTM(k3, s2)} -> per step {FC -> BN ->
  ReLU -> FC} -> mean over T`` (the mean of the per-step logits, as the paper averages the per-step spikes of
  its output layer). The FC BatchNorm mirrors the BN of the FCLIF block. RGB-gesture: 10 classes; its module
  names equal DVS128's, so :func:`~bidl.models.registry.load_matching_weights` initialises it from a trained
  DVS128 baseline as the paper initialises its network.
- CIFAR10-DVS (:func:`cifar10_dvs_conv3d`, :func:`cifar10_dvs_convlstm`; [5 ConvLIF, first k5 s2 then k3,
  MaxPool2 each, temporal sum, FC-ReLU-FC]): ``5 x {Conv3D(3xkxk) -> BN -> ReLU | ConvLSTM(k)} -> MaxPool2 ->
  flatten -> sum over T -> FC -> ReLU -> FC``.
- Luna16Cls (:func:`luna16_cls_conv3d`, :func:`luna16_cls_convlstm`; [3 ConvLIF k3 + MaxPool2, temporal
  mean, 3 FC]): ``3 x {Conv3D(3x3x3) -> BN -> ReLU | ConvLSTM(k3)} -> MaxPool2 -> flatten -> mean over T ->
  FC -> ReLU -> FC -> ReLU -> FC``.
- Jester (:func:`jester_v1_conv3d`, :func:`jester_v1_convlstm`, the baselines of ``jester_v1`` and of
  ``jester_v2``, which has the same ResNet18 with other neurons; [ResNet18 with LIAF, ResNet-D shortcuts, GAP
  per step, mean over T, FC]):

  - Conv3D: a causal R3D-18 (Tran et al. 2018) of the same widths and blocks: stem ``Conv3D(3x7x7, s2) -> BN
    -> ReLU -> MaxPool(3, s2)`` per frame, basic blocks ``Conv3D(3x3x3, s) -> BN -> ReLU -> Conv3D(3x3x3) ->
    BN -> (+ shortcut) -> ReLU``, the ResNet-D shortcut ``AvgPool(s) -> Conv3D(1x1x1) -> BN`` where the
    stride or width changes (a pointwise projection, ``U = 1``, as R3D's; the paper network's is a 1x1
    Conv2D); then GAP per step, mean over T, FC. 20 conv layers, as the paper's ResNet18.
  - ConvLSTM: the ResNet's stem (``Conv2D(7x7, s2) -> BN -> ReLU -> MaxPool(3, s2)`` per frame), then per
    stage ``ceil(blocks_i / 2)`` ConvLSTM layers of the stage width ``widths_i`` (k3; the first strides like
    the stage: 1, 2, 2, 2), i.e. one ConvLSTM per stage for ResNet18 (4 layers), then GAP per step, mean over
    T, FC. Why: a ConvLSTM layer holds two convolutions (input and hidden), as a basic block does, and has
    the stage's state width; one per pair of basic blocks keeps the four stage widths and strides (the
    ResNet's "width") with a stack shallow enough to train by BPTT. Replacing each of the 16 block convs by a
    ConvLSTM would give 4x the ResNet's weights and a 16-deep recurrent stack.
- IMDB (:func:`imdb_lstm`; [Embedding + FCLIAF + Dropout + FC, last step]): ``Embedding(vocab, E) ->
  LSTM(E -> hidden) -> last step -> Dropout -> FC(hidden -> n_classes)``, 2 logits as the paper's ``imdb``
  (cross-entropy, as this repository trains).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from ..ann import LSTM, CausalConv3d, ConvLSTM
from ..functional import LIFPLUS_CONSTANTS, LIFPLUS_MODES
from ..layers import TemporalAggregation, TimeDistributed
from . import cifar10_dvs, dvs128, imdb, luna16, resnet, rgb_gesture
from .registry import register_model
from .twins import TWINS

__all__ = [
    "BASELINES",
    "CELLS",
    "NEURON_KEYWORDS",
    "ConvBaseline",
    "IMDBLSTM",
    "JesterV1Conv3d",
    "JesterV1ConvLSTM",
    "R3DBasicBlock",
    "baselines_of",
    "baseline_kind",
    "structural_kwargs",
    "cifar10_dvs_conv3d",
    "cifar10_dvs_convlstm",
    "dvs128_gesture_conv3d",
    "dvs128_gesture_convlstm",
    "imdb_lstm",
    "jester_v1_conv3d",
    "jester_v1_convlstm",
    "luna16_cls_conv3d",
    "luna16_cls_convlstm",
    "rgb_gesture_conv3d",
    "rgb_gesture_convlstm",
]

CELLS = ("conv3d", "convlstm")
TEMPORAL_KERNEL = 3
"""``U``, the temporal kernel of every Conv3D baseline's convolutions (1x1 shortcut projections: 1)."""

NEURON_KEYWORDS: frozenset[str] = frozenset(
    {
        # the neuron model and where its BatchNorm sits (the baselines put BN after every conv)
        "neuron",
        "norm",
        # LIF / LIAF parameters and training options (bidl.neurons.LIF, LIAF)
        "alpha",
        "beta",
        "theta",
        "v_reset",
        "reset",
        "sharing",
        "learnable",
        "noise",
        "surrogate",
        "surrogate_scale",
        "activation",
        "liaf_mode",
        "liaf_readout",
        # Jester v2's electrically coupled neurons
        "coupling",
        "coupling_kernel",
        # LIF+ stage modes and constants (bidl.functional)
        *LIFPLUS_MODES,
        "reversal",
        *LIFPLUS_CONSTANTS,
    }
)
"""The keyword arguments of the paper builders that configure the spiking neurons, not the structure: the
baselines have no neurons and refuse them (``TypeError``); :func:`structural_kwargs` removes them."""

BASELINES: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        ("dvs128_gesture", "dvs128_gesture_authors"),
        {"conv3d": "dvs128_gesture_conv3d", "convlstm": "dvs128_gesture_convlstm"},
    ),
    **dict.fromkeys(
        ("rgb_gesture", "rgb_gesture_authors"),
        {"conv3d": "rgb_gesture_conv3d", "convlstm": "rgb_gesture_convlstm"},
    ),
    **dict.fromkeys(
        ("cifar10_dvs", "cifar10_dvs_authors"),
        {"conv3d": "cifar10_dvs_conv3d", "convlstm": "cifar10_dvs_convlstm"},
    ),
    **dict.fromkeys(
        ("luna16_cls", "luna16_cls_authors"),
        {"conv3d": "luna16_cls_conv3d", "convlstm": "luna16_cls_convlstm"},
    ),
    **dict.fromkeys(
        ("jester_v1", "jester_v1_authors", "jester_v2"),
        {"conv3d": "jester_v1_conv3d", "convlstm": "jester_v1_convlstm"},
    ),
    **dict.fromkeys(("imdb", "imdb_authors"), {"lstm": "imdb_lstm"}),
}
"""Paper builder name -> {baseline kind: registered baseline name} (Table 3: Conv3D and ConvLSTM, or LSTM for
IMDB). The non-spiking twins, Table 3's baselines of kind ``relu``, are :data:`bidl.models.twins.TWINS`."""


def structural_kwargs(model_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A paper experiment's ``model_kwargs`` without the neuron keywords (:data:`NEURON_KEYWORDS`): the
    keyword arguments its baselines take.

    Example:
        >>> structural_kwargs({"channels": [16, 32, 64], "hidden": 128, "alpha": 0.8, "norm": "input"})
        {'channels': [16, 32, 64], 'hidden': 128}
    """
    return {k: v for k, v in (model_kwargs or {}).items() if k not in NEURON_KEYWORDS}


def baselines_of(model: str) -> dict[str, str]:
    """The baselines of the paper builder ``model`` (see :data:`BASELINES`); ``KeyError`` naming it."""
    try:
        return dict(BASELINES[model])
    except KeyError:
        raise KeyError(f"model: no baselines for {model!r}; known: {sorted(BASELINES)}") from None


def baseline_kind(model: str) -> str | None:
    """The kind (``"conv3d"``, ``"convlstm"``, ``"lstm"``; ``"relu"`` for a non-spiking twin) of a registered
    baseline, ``None`` for any other model (a paper network)."""
    if model in TWINS.values():
        return "relu"
    for kinds in BASELINES.values():
        for kind, name in kinds.items():
            if name == model:
                return kind
    return None


def _check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise ValueError(f"cell: unknown {cell!r}; choose one of {CELLS}")


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _conv3d_block(c_in: int, c_out: int, kernel: int, stride: int, pool: bool, iteration: str) -> nn.Module:
    """``CausalConv3d(U x k x k) -> BN -> ReLU [-> MaxPool2]``, the post-conv part on every frame."""
    post: list[nn.Module] = [nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        post.append(nn.MaxPool2d(2))
    return nn.Sequential(
        CausalConv3d(
            c_in, c_out, (TEMPORAL_KERNEL, kernel, kernel), stride, kernel // 2, iteration=iteration
        ),
        TimeDistributed(nn.Sequential(*post), iteration),
    )


def _convlstm_block(c_in: int, c_out: int, kernel: int, stride: int, pool: bool, iteration: str) -> nn.Module:
    """``ConvLSTM(k, stride) [-> MaxPool2]``."""
    layers: list[nn.Module] = [
        ConvLSTM(c_in, c_out, kernel, stride, kernel // 2, norm=True, iteration=iteration)
    ]
    if pool:
        layers.append(TimeDistributed(nn.MaxPool2d(2), iteration))
    return nn.Sequential(*layers)


class ConvBaseline(nn.Module):
    """A stack of Conv3D or ConvLSTM layers, optional 2x2 max-pooling after each, a temporal aggregation and
    an MLP head: the DVS128, CIFAR10-DVS and Luna16 baselines.

    Layer ``i`` has ``channels[i]`` output (hidden) channels, spatial kernel ``kernels[i]``, stride
    ``strides[i]`` and padding ``kernels[i] // 2``; ``cell="conv3d"`` builds ``CausalConv3d(U=3) -> BN ->
    ReLU``, ``cell="convlstm"`` a ``ConvLSTM``. The head is ``Linear [-> BN] -> ReLU`` per ``hidden`` width,
    then ``Linear -> n_classes``; with ``head_per_step`` it runs on every step and its outputs are aggregated,
    otherwise it runs on the aggregated features. ``input_norm``: BatchNorm of the input frames (DVS128).

    Input ``[B, T, C, H, W]`` in IIM (``[B, C, H, W]`` per step in EIM); output ``[B, n_classes]`` (in EIM:
    the output up to the current step).

    Example:
        >>> import torch
        >>> net = ConvBaseline(cell="convlstm", in_channels=1, height=8, width=8, channels=(4,), kernels=(3,),
        ...                    strides=(1,), pool=True, hidden=(8,), n_classes=3)
        >>> net(torch.rand(2, 5, 1, 8, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        *,
        cell: str,
        in_channels: int,
        height: int,
        width: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        pool: bool,
        hidden: Sequence[int],
        n_classes: int,
        aggregation: str = "mean",
        head_per_step: bool = False,
        input_norm: bool = False,
        head_norm: bool = False,
        iteration: str = "internal",
    ):
        super().__init__()
        _check_cell(cell)
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError(f"channels, kernels, strides: lengths differ ({channels}, {kernels}, {strides})")
        self.cell = cell
        self.input_norm = (
            TimeDistributed(nn.BatchNorm2d(in_channels), iteration) if input_norm else nn.Identity()
        )
        make_block = _conv3d_block if cell == "conv3d" else _convlstm_block
        blocks, h, w = [], height, width
        for c_in, c_out, k, s in zip((in_channels, *channels[:-1]), channels, kernels, strides, strict=True):
            blocks.append(make_block(c_in, c_out, k, s, pool, iteration))
            h, w = _out(h, k, s, k // 2), _out(w, k, s, k // 2)
            if pool:
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"height, width: {height}x{width} is too small for {len(channels)} stages")
        self.blocks = nn.Sequential(*blocks)
        self.flatten = TimeDistributed(nn.Flatten(1), iteration)
        self.feature_size = channels[-1] * h * w
        layers: list[nn.Module] = []
        features = self.feature_size
        for size in hidden:
            layers += [nn.Linear(features, size), *([nn.BatchNorm1d(size)] if head_norm else []), nn.ReLU()]
            features = size
        head = nn.Sequential(*layers, nn.Linear(features, n_classes))
        self.head_per_step = head_per_step
        self.head = TimeDistributed(head, iteration) if head_per_step else head
        self.aggregate = TemporalAggregation(aggregation, iteration=iteration)

    def features(self, x: Tensor) -> Tensor:
        """Flattened output of the last layer (after pooling): ``[B, T, F]`` in IIM, ``[B, F]`` in EIM."""
        return self.flatten(self.blocks(self.input_norm(x)))

    def forward(self, x: Tensor) -> Tensor:
        if self.head_per_step:
            return self.aggregate(self.head(self.features(x)))
        return self.head(self.aggregate(self.features(x)))


def _dvs128(
    cell: str,
    *,
    channels: Sequence[int],
    hidden: int,
    height: int,
    width: int,
    in_channels: int,
    n_classes: int,
    aggregation: str,
    iteration: str,
) -> ConvBaseline:
    if len(channels) != len(dvs128.CHANNELS):
        raise ValueError(f"channels: expected {len(dvs128.CHANNELS)} widths, got {list(channels)}")
    return ConvBaseline(
        cell=cell,
        in_channels=in_channels,
        height=height,
        width=width,
        channels=channels,
        kernels=(dvs128.KERNEL,) * len(channels),
        strides=(dvs128.STRIDE,) * len(channels),
        pool=False,
        hidden=(hidden,),
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=True,
        input_norm=True,
        head_norm=True,
        iteration=iteration,
    )


@register_model
def dvs128_gesture_conv3d(
    *,
    channels: Sequence[int] = dvs128.CHANNELS,
    hidden: int = dvs128.HIDDEN,
    height: int = dvs128.HEIGHT,
    width: int = dvs128.WIDTH,
    in_channels: int = dvs128.IN_CHANNELS,
    n_classes: int = dvs128.N_CLASSES,
    aggregation: str = dvs128.AGGREGATION,
    iteration: str = "internal",
) -> ConvBaseline:
    """Conv3D baseline of :func:`~bidl.models.dvs128.dvs128_gesture`: ``BN(2) -> 3 x {causal Conv3D(3x3x3,
    s2, p1) -> BN -> ReLU} -> per step {FC(hidden) -> BN -> ReLU -> FC(n_classes)} -> mean over T``;
    ``[B, 60, 2, 40, 40]`` -> 11 logits."""
    return _dvs128(
        "conv3d",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        iteration=iteration,
    )


@register_model
def dvs128_gesture_convlstm(
    *,
    channels: Sequence[int] = dvs128.CHANNELS,
    hidden: int = dvs128.HIDDEN,
    height: int = dvs128.HEIGHT,
    width: int = dvs128.WIDTH,
    in_channels: int = dvs128.IN_CHANNELS,
    n_classes: int = dvs128.N_CLASSES,
    aggregation: str = dvs128.AGGREGATION,
    iteration: str = "internal",
) -> ConvBaseline:
    """ConvLSTM baseline of :func:`~bidl.models.dvs128.dvs128_gesture`: ``BN(2) -> 3 x ConvLSTM(k3, s2) ->
    per step {FC(hidden) -> BN -> ReLU -> FC(n_classes)} -> mean over T``; ``[B, 60, 2, 40, 40]`` -> 11
    logits."""
    return _dvs128(
        "convlstm",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        iteration=iteration,
    )


@register_model
def rgb_gesture_conv3d(*, n_classes: int = rgb_gesture.N_CLASSES, **kwargs: Any) -> ConvBaseline:
    """Conv3D baseline of :func:`~bidl.models.rgb_gesture.rgb_gesture`: :func:`dvs128_gesture_conv3d` with 10
    classes (keyword arguments as that builder)."""
    return dvs128_gesture_conv3d(n_classes=n_classes, **kwargs)


@register_model
def rgb_gesture_convlstm(*, n_classes: int = rgb_gesture.N_CLASSES, **kwargs: Any) -> ConvBaseline:
    """ConvLSTM baseline of :func:`~bidl.models.rgb_gesture.rgb_gesture`: :func:`dvs128_gesture_convlstm`
    with 10 classes (keyword arguments as that builder)."""
    return dvs128_gesture_convlstm(n_classes=n_classes, **kwargs)


def _cifar10_dvs(
    cell: str,
    *,
    channels: Sequence[int],
    hidden: int,
    height: int,
    width: int,
    in_channels: int,
    n_classes: int,
    aggregation: str,
    head_per_step: bool,
    iteration: str,
) -> ConvBaseline:
    if len(channels) != len(cifar10_dvs.CHANNELS):
        raise ValueError(f"channels: expected {len(cifar10_dvs.CHANNELS)} widths, got {list(channels)}")
    return ConvBaseline(
        cell=cell,
        in_channels=in_channels,
        height=height,
        width=width,
        channels=channels,
        kernels=cifar10_dvs.KERNELS,
        strides=cifar10_dvs.STRIDES,
        pool=True,
        hidden=(hidden,),
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


@register_model
def cifar10_dvs_conv3d(
    *,
    channels: Sequence[int] = cifar10_dvs.CHANNELS,
    hidden: int = cifar10_dvs.HIDDEN,
    height: int = cifar10_dvs.HEIGHT,
    width: int = cifar10_dvs.WIDTH,
    in_channels: int = cifar10_dvs.IN_CHANNELS,
    n_classes: int = cifar10_dvs.N_CLASSES,
    aggregation: str = cifar10_dvs.AGGREGATION,
    head_per_step: bool = cifar10_dvs.HEAD_PER_STEP,
    iteration: str = "internal",
) -> ConvBaseline:
    """Conv3D baseline of :func:`~bidl.models.cifar10_dvs.cifar10_dvs`: ``5 x {causal Conv3D(3x5x5 s2, then
    3x3x3) -> BN -> ReLU -> MaxPool2} -> flatten -> sum over T -> FC(hidden) -> ReLU -> FC(n_classes)``;
    ``[B, 10, 2, 128, 128]`` -> 10 logits."""
    return _cifar10_dvs(
        "conv3d",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


@register_model
def cifar10_dvs_convlstm(
    *,
    channels: Sequence[int] = cifar10_dvs.CHANNELS,
    hidden: int = cifar10_dvs.HIDDEN,
    height: int = cifar10_dvs.HEIGHT,
    width: int = cifar10_dvs.WIDTH,
    in_channels: int = cifar10_dvs.IN_CHANNELS,
    n_classes: int = cifar10_dvs.N_CLASSES,
    aggregation: str = cifar10_dvs.AGGREGATION,
    head_per_step: bool = cifar10_dvs.HEAD_PER_STEP,
    iteration: str = "internal",
) -> ConvBaseline:
    """ConvLSTM baseline of :func:`~bidl.models.cifar10_dvs.cifar10_dvs`: ``5 x {ConvLSTM(k5 s2, then k3) ->
    MaxPool2} -> flatten -> sum over T -> FC(hidden) -> ReLU -> FC(n_classes)``; ``[B, 10, 2, 128, 128]`` ->
    10 logits."""
    return _cifar10_dvs(
        "convlstm",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


def _luna16(
    cell: str,
    *,
    channels: Sequence[int],
    hidden: Sequence[int],
    height: int,
    width: int,
    in_channels: int,
    n_classes: int,
    aggregation: str,
    head_per_step: bool,
    iteration: str,
) -> ConvBaseline:
    if len(channels) != len(luna16.CHANNELS):
        raise ValueError(f"channels: expected {len(luna16.CHANNELS)} widths, got {list(channels)}")
    if len(hidden) != len(luna16.HIDDEN):
        raise ValueError(f"hidden: expected {len(luna16.HIDDEN)} widths, got {list(hidden)}")
    return ConvBaseline(
        cell=cell,
        in_channels=in_channels,
        height=height,
        width=width,
        channels=channels,
        kernels=luna16.KERNELS,
        strides=luna16.STRIDES,
        pool=True,
        hidden=hidden,
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


@register_model
def luna16_cls_conv3d(
    *,
    channels: Sequence[int] = luna16.CHANNELS,
    hidden: Sequence[int] = luna16.HIDDEN,
    height: int = luna16.HEIGHT,
    width: int = luna16.WIDTH,
    in_channels: int = luna16.IN_CHANNELS,
    n_classes: int = luna16.N_CLASSES,
    aggregation: str = luna16.AGGREGATION,
    head_per_step: bool = luna16.HEAD_PER_STEP,
    iteration: str = "internal",
) -> ConvBaseline:
    """Conv3D baseline of :func:`~bidl.models.luna16.luna16_cls`: ``3 x {causal Conv3D(3x3x3) -> BN -> ReLU ->
    MaxPool2} -> flatten -> mean over T -> FC -> ReLU -> FC -> ReLU -> FC``; ``[B, 8, 1, 32, 32]`` -> 2
    logits."""
    return _luna16(
        "conv3d",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


@register_model
def luna16_cls_convlstm(
    *,
    channels: Sequence[int] = luna16.CHANNELS,
    hidden: Sequence[int] = luna16.HIDDEN,
    height: int = luna16.HEIGHT,
    width: int = luna16.WIDTH,
    in_channels: int = luna16.IN_CHANNELS,
    n_classes: int = luna16.N_CLASSES,
    aggregation: str = luna16.AGGREGATION,
    head_per_step: bool = luna16.HEAD_PER_STEP,
    iteration: str = "internal",
) -> ConvBaseline:
    """ConvLSTM baseline of :func:`~bidl.models.luna16.luna16_cls`: ``3 x {ConvLSTM(k3) -> MaxPool2} ->
    flatten -> mean over T -> FC -> ReLU -> FC -> ReLU -> FC``; ``[B, 8, 1, 32, 32]`` -> 2 logits."""
    return _luna16(
        "convlstm",
        channels=channels,
        hidden=hidden,
        height=height,
        width=width,
        in_channels=in_channels,
        n_classes=n_classes,
        aggregation=aggregation,
        head_per_step=head_per_step,
        iteration=iteration,
    )


# ----------------------------------------------------------------------------------------------- Jester


def _bn_relu(channels: int, iteration: str, relu: bool = True) -> TimeDistributed:
    layers = [nn.BatchNorm2d(channels), *([nn.ReLU()] if relu else [])]
    return TimeDistributed(nn.Sequential(*layers), iteration)


class R3DBasicBlock(nn.Module):
    """Causal R3D basic block: ``x -> Conv3D(3x3x3, stride) -> BN -> ReLU -> Conv3D(3x3x3) -> BN
    (+ shortcut(x)) -> ReLU``; the shortcut is the identity, or (ResNet-D, as the paper's network)
    ``AvgPool(stride, ceil_mode) -> Conv3D(1x1x1) -> BN`` when the stride or the width changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, iteration: str = "internal"):
        super().__init__()
        u, k = TEMPORAL_KERNEL, resnet.BLOCK_KERNEL
        self.conv1 = CausalConv3d(in_channels, out_channels, (u, k, k), stride, k // 2, iteration=iteration)
        self.bn1 = _bn_relu(out_channels, iteration)
        self.conv2 = CausalConv3d(out_channels, out_channels, (u, k, k), 1, k // 2, iteration=iteration)
        self.bn2 = _bn_relu(out_channels, iteration, relu=False)
        if stride != 1 or in_channels != out_channels:
            pool = [TimeDistributed(nn.AvgPool2d(stride, ceil_mode=True), iteration)] if stride != 1 else []
            self.shortcut = nn.Sequential(
                *pool,
                CausalConv3d(in_channels, out_channels, (1, 1, 1), iteration=iteration),
                _bn_relu(out_channels, iteration, relu=False),
            )
        else:
            self.shortcut = None
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))) + identity)


class _JesterHead(nn.Module):
    """GAP per step, temporal aggregation and the FC of the Jester networks."""

    def __init__(self, channels: int, n_classes: int, aggregation: str, iteration: str):
        super().__init__()
        self.global_pool = TimeDistributed(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), iteration)
        self.aggregate = TemporalAggregation(aggregation, iteration=iteration)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.aggregate(self.global_pool(x)))


def _check_stages(widths: Sequence[int], blocks: Sequence[int]) -> None:
    stages = len(resnet.STAGE_STRIDES)
    if len(widths) != stages or len(blocks) != stages:
        raise ValueError(
            f"widths, blocks: expected {stages} stages each, got {list(widths)} and {list(blocks)}"
        )


def _stem_pool() -> nn.MaxPool2d:
    """The max-pooling after the ResNet stem (:data:`bidl.models.resnet.POOL_KERNEL`, ``POOL_STRIDE``)."""
    return nn.MaxPool2d(resnet.POOL_KERNEL, stride=resnet.POOL_STRIDE, padding=resnet.POOL_KERNEL // 2)


class JesterV1Conv3d(nn.Module):
    """Causal R3D (ResNet of :class:`R3DBasicBlock`) with GAP per step, mean over T and an FC classifier: the
    Conv3D baseline of the Jester ResNet18-LIAF (see the module docstring). Input ``[B, T, C, H, W]`` (IIM)
    or ``[B, C, H, W]`` per step (EIM); output ``[B, n_classes]``."""

    def __init__(
        self,
        *,
        in_channels: int = resnet.IN_CHANNELS,
        n_classes: int = resnet.N_CLASSES,
        widths: Sequence[int] = resnet.RESNET18_WIDTHS,
        blocks: Sequence[int] = resnet.RESNET18_BLOCKS,
        aggregation: str = resnet.AGGREGATION,
        iteration: str = "internal",
    ):
        super().__init__()
        _check_stages(widths, blocks)
        u, k = TEMPORAL_KERNEL, resnet.STEM_KERNEL
        self.stem = CausalConv3d(
            in_channels, widths[0], (u, k, k), resnet.STEM_STRIDE, k // 2, iteration=iteration
        )
        self.stem_bn = _bn_relu(widths[0], iteration)
        self.pool = TimeDistributed(_stem_pool(), iteration)
        stages, channels = [], widths[0]
        for width, count, stride in zip(widths, blocks, resnet.STAGE_STRIDES, strict=True):
            stage = []
            for block in range(count):
                stage.append(R3DBasicBlock(channels, width, stride if block == 0 else 1, iteration))
                channels = width
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = _JesterHead(channels, n_classes, aggregation, iteration)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.stem_bn(self.stem(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)


class JesterV1ConvLSTM(nn.Module):
    """The ResNet stem per frame, then ``ceil(blocks_i / 2)`` ConvLSTM layers of width ``widths_i`` per stage
    (the first with the stage's stride), GAP per step, mean over T and an FC classifier: the ConvLSTM baseline
    of the Jester ResNet18-LIAF (see the module docstring). Shapes as :class:`JesterV1Conv3d`."""

    def __init__(
        self,
        *,
        in_channels: int = resnet.IN_CHANNELS,
        n_classes: int = resnet.N_CLASSES,
        widths: Sequence[int] = resnet.RESNET18_WIDTHS,
        blocks: Sequence[int] = resnet.RESNET18_BLOCKS,
        aggregation: str = resnet.AGGREGATION,
        iteration: str = "internal",
    ):
        super().__init__()
        _check_stages(widths, blocks)
        k = resnet.STEM_KERNEL
        stem = nn.Conv2d(in_channels, widths[0], k, stride=resnet.STEM_STRIDE, padding=k // 2)
        self.stem = TimeDistributed(
            nn.Sequential(stem, nn.BatchNorm2d(widths[0]), nn.ReLU(), _stem_pool()), iteration
        )
        k = resnet.BLOCK_KERNEL
        stages, channels = [], widths[0]
        for width, count, stride in zip(widths, blocks, resnet.STAGE_STRIDES, strict=True):
            layers = []
            for layer in range(max(1, math.ceil(count / 2))):
                s = stride if layer == 0 else 1
                layers.append(ConvLSTM(channels, width, k, s, k // 2, norm=True, iteration=iteration))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = _JesterHead(channels, n_classes, aggregation, iteration)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)


@register_model
def jester_v1_conv3d(
    *,
    widths: Sequence[int] = resnet.RESNET18_WIDTHS,
    blocks: Sequence[int] = resnet.RESNET18_BLOCKS,
    in_channels: int = resnet.IN_CHANNELS,
    n_classes: int = resnet.N_CLASSES,
    aggregation: str = resnet.AGGREGATION,
    iteration: str = "internal",
) -> JesterV1Conv3d:
    """Conv3D baseline of the Jester networks (:func:`~bidl.models.resnet.jester_v1`, ``jester_v2``): a causal
    R3D-18 of the same widths, ``[B, 16, 3, 112, 112]`` -> 27 logits (see :class:`JesterV1Conv3d`)."""
    return JesterV1Conv3d(
        in_channels=in_channels,
        n_classes=n_classes,
        widths=widths,
        blocks=blocks,
        aggregation=aggregation,
        iteration=iteration,
    )


@register_model
def jester_v1_convlstm(
    *,
    widths: Sequence[int] = resnet.RESNET18_WIDTHS,
    blocks: Sequence[int] = resnet.RESNET18_BLOCKS,
    in_channels: int = resnet.IN_CHANNELS,
    n_classes: int = resnet.N_CLASSES,
    aggregation: str = resnet.AGGREGATION,
    iteration: str = "internal",
) -> JesterV1ConvLSTM:
    """ConvLSTM baseline of the Jester networks: the ResNet stem, one ConvLSTM per stage of ResNet18 (widths
    and strides of the stages), GAP per step, mean over T, FC; ``[B, 16, 3, 112, 112]`` -> 27 logits (see
    :class:`JesterV1ConvLSTM`)."""
    return JesterV1ConvLSTM(
        in_channels=in_channels,
        n_classes=n_classes,
        widths=widths,
        blocks=blocks,
        aggregation=aggregation,
        iteration=iteration,
    )


# ------------------------------------------------------------------------------------------------- IMDB


class IMDBLSTM(nn.Module):
    """Embedding, an LSTM over the token sequence, and an FC classifier on its last step.

    Input: token ids, int64 ``[B, L]`` in IIM (``[B]`` per call in EIM); output ``[B, n_classes]`` logits of
    the last step (in EIM: of the current step).

    Example:
        >>> import torch
        >>> IMDBLSTM(vocab_size=20, embedding_dim=8, hidden=16)(torch.randint(0, 20, (3, 7))).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        *,
        vocab_size: int = imdb.VOCAB_SIZE,
        embedding_dim: int = imdb.EMBEDDING_DIM,
        hidden: int = imdb.HIDDEN,
        n_classes: int = imdb.N_CLASSES,
        dropout: float = imdb.DROPOUT,
        iteration: str = "internal",
    ):
        super().__init__()
        self.embedding = TimeDistributed(nn.Embedding(vocab_size, embedding_dim), iteration=iteration)
        self.lstm = LSTM(embedding_dim, hidden, iteration=iteration)
        self.last = TemporalAggregation("last", iteration=iteration)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.last(self.lstm(self.embedding(tokens)))))


@register_model
def imdb_lstm(
    *,
    vocab_size: int = imdb.VOCAB_SIZE,
    embedding_dim: int = imdb.EMBEDDING_DIM,
    hidden: int = imdb.HIDDEN,
    n_classes: int = imdb.N_CLASSES,
    dropout: float = imdb.DROPOUT,
    iteration: str = "internal",
) -> IMDBLSTM:
    """LSTM baseline of :func:`~bidl.models.imdb.imdb`: ``Embedding(vocab, E) -> LSTM(E -> hidden) -> last
    step -> Dropout -> FC(hidden -> n_classes)``; ``[B, 500]`` tokens -> 2 logits."""
    return IMDBLSTM(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden=hidden,
        n_classes=n_classes,
        dropout=dropout,
        iteration=iteration,
    )
