"""The CIFAR10-DVS network of the paper (section 5.1.2, Table 2; authors' ``SeqClif5Fc2CdItout``).

Five ConvLIF blocks, each followed by 2x2 max-pooling of its output, a temporal aggregation and a two-layer
FC head::

    [B, 10, 2, 128, 128] -> ConvLIF(2->32, k5 s2 p2) -> MaxPool2 -> ConvLIF(32->64, k3 p1) -> MaxPool2
    -> ConvLIF(64->128) -> MaxPool2 -> ConvLIF(128->256) -> MaxPool2 -> ConvLIF(256->512) -> MaxPool2
    -> [B, T, 512, 2, 2] -> flatten 2048 -> {aggregate over T, FC 2048->512, ReLU, FC 512->10}

:class:`ConvPoolClassifier` is the shape this network shares with Luna16Cls (:mod:`bidl.models.luna16`).

Paper (:func:`cifar10_dvs`) vs authors' code (:func:`cifar10_dvs_authors`, config
``clif5fc2cd/clif5fc2cd_itout-b64x1-cifar10dvs.py`` and ``vgg_cifar10dvs/backbone.py``):

- neuron: paper "five Conv2DLIF layers" (section 5.1.2; Table 2: LIF) -> ``neuron="lif"``; the config sets
  ``cmode='analog'`` -> LIAF (ReLU of the membrane before reset, ``liaf_readout="pre_reset"``).
- aggregation and head: paper "followed by a SumLayer for time aggregation, and two FcBlock layers" -> the
  2048-d features are summed over T, then the head runs once; ``SeqClif5Fc2CdItout.forward`` runs the head
  on every step and averages its outputs (``xo = xo + x7 / t``), ``head_per_step=True, aggregation="mean"``.
  (Their IIM class ``SeqClif5Fc2CdIt`` in ``backbone.py`` averages the features before the head; the
  configs that match the paper's recipe, Adam 1e-2, use the ``Itout`` class.)
- BatchNorm: the paper's ST block is "convolution, batch normalization, and LIF" (section 2) -> BN on the
  synaptic current, ``norm="input"``; their ``Conv2dLif(norm_state=True)`` puts it on the membrane,
  ``norm="state"``. Same parameter count either way.
- neuron parameters: learned in the paper's variant (the paper: "The neuron parameters were trained in the
  all-share mode", section 5.1.2, said of DVS128; SPEC section 1), fixed in the authors' code
  (``SOMA_PARAMS['learn'] = False``): alpha 0.3, beta 0, theta 0.5, v_reset 0. ASM in both.

Shared, from the authors' code where the paper is silent: the pooling comes after the neuron
(``self.mp1(self.clif1(x))``), the FcBlock is ``Linear -> ReLU -> Linear`` with no BatchNorm, training noise
0 (``noise=0`` in the config). With the default widths ``cifar10_dvs_authors`` has exactly the authors'
2,625,514 trainable parameters; ``cifar10_dvs`` adds the 5 x 4 learned neuron scalars (2,625,534).

LIF+ (an extension, not a result of the paper's Table 2): ``neuron="lifplus"`` builds ConvLIFPlus blocks
(:class:`~bidl.LIFPlus`, the paper's Fig. 5 neuron after Flexon); its stage keywords (``decay``,
``accumulation``, ``reversal``, ``trigger``, ``inhibition``, ``refractory``;
:data:`~bidl.functional.LIFPLUS_MODES`) and constants (:data:`~bidl.functional.LIFPLUS_CONSTANTS`) go with the
other neuron keywords; LIAF's options are refused with it. With every stage at its default the network
computes exactly what ``neuron="lif"`` does, and the two share one ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..functional import LIFPLUS_CONSTANTS, LIFPLUS_MODES
from ..layers import ConvLIAF, ConvLIF, ConvLIFPlus, TemporalAggregation, TimeDistributed
from .registry import authors_neuron, register_model

__all__ = ["NEURONS", "ConvPoolClassifier", "cifar10_dvs", "cifar10_dvs_authors", "neuron_options"]

NEURONS = ("lif", "liaf", "lifplus")
_BLOCKS = {"lif": ConvLIF, "liaf": ConvLIAF, "lifplus": ConvLIFPlus}
_LIFPLUS_KEYWORDS = (*LIFPLUS_MODES, "reversal", *LIFPLUS_CONSTANTS)

# The architecture at the paper's size, declared once: the builders here and the baselines of this network
# (bidl.models.baselines) take their defaults from these.
IN_CHANNELS = 2
"""Input channels: the ON and OFF event counts of a frame."""
HEIGHT, WIDTH = 128, 128
"""Input frame size (the sensor's)."""
CHANNELS = (32, 64, 128, 256, 512)
"""Widths of the five ConvLIF blocks."""
KERNELS = (5, 3, 3, 3, 3)
"""Spatial kernel of each conv (padding ``kernel // 2``)."""
STRIDES = (2, 1, 1, 1, 1)
"""Stride of each conv (each block is followed by a 2x2 max-pooling)."""
HIDDEN = 512
"""Width of the FC head's hidden layer."""
N_CLASSES = 10
"""Output classes: the 10 CIFAR-10 classes."""
AGGREGATION = "sum"
"""The paper's temporal aggregation: the features summed over T, then the head once (:func:`cifar10_dvs`;
the authors' code: the head on every step, its outputs averaged)."""
HEAD_PER_STEP = False
"""The paper's head placement: once, after the temporal aggregation (the authors' code: on every step)."""


def neuron_options(
    neuron: str,
    activation: str | None = None,
    liaf_mode: str | None = None,
    liaf_readout: str | None = None,
) -> dict:
    """The LIAF-only keyword arguments that were given (``None`` = the library default).

    Raises ``ValueError`` for an unknown ``neuron`` or an LIAF option given with another neuron (``"lif"``,
    ``"lifplus"``).
    """
    if neuron not in NEURONS:
        raise ValueError(f"neuron: unknown {neuron!r}; choose one of {NEURONS}")
    options = dict(activation=activation, liaf_mode=liaf_mode, liaf_readout=liaf_readout)
    given = {name: value for name, value in options.items() if value is not None}
    if neuron != "liaf" and given:
        raise ValueError(f"{', '.join(given)}: only for neuron='liaf'")
    return given


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _mlp(in_features: int, hidden: Sequence[int], n_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, n_classes))


class ConvPoolClassifier(nn.Module):
    """ConvLIF (or ConvLIAF, ConvLIFPlus) blocks, each followed by 2x2 max-pooling of its output, then a
    temporal aggregation and an MLP head (``Linear -> ReLU`` per hidden width, then ``Linear -> n_classes``).

    Conv ``i`` has ``channels[i]`` filters of size ``kernels[i]``, stride ``strides[i]`` and padding
    ``kernels[i] // 2``. With ``head_per_step=False`` the flattened features are aggregated over T and the
    head runs once (IIM) or on the running aggregate (EIM); with ``head_per_step=True`` the head runs on
    every step and its outputs are aggregated.

    ``neuron``: one of :data:`NEURONS`; ``neuron_kwargs`` go to every block's neuron (the LIF+ stage modes and
    constants only with ``neuron="lifplus"``).

    Input ``[B, T, C, H, W]`` in IIM (``[B, C, H, W]`` per step in EIM); output ``[B, n_classes]`` (in EIM:
    the output up to the current step, equal to the IIM output after the last step).

    Example:
        >>> import torch
        >>> net = ConvPoolClassifier(in_channels=1, height=8, width=8, channels=(4,), kernels=(3,),
        ...                          strides=(1,), hidden=(8,), n_classes=3)
        >>> net(torch.rand(2, 5, 1, 8, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        *,
        in_channels: int,
        height: int,
        width: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        hidden: Sequence[int],
        n_classes: int,
        neuron: str = "lif",
        aggregation: str = "mean",
        head_per_step: bool = False,
        norm: str | None = "state",
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__()
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError(f"channels, kernels, strides: lengths differ ({channels}, {kernels}, {strides})")
        if neuron not in NEURONS:
            raise ValueError(f"neuron: unknown {neuron!r}; choose one of {NEURONS}")
        lifplus_given = [name for name in neuron_kwargs if name in _LIFPLUS_KEYWORDS]
        if neuron != "lifplus" and lifplus_given:
            raise ValueError(f"{', '.join(lifplus_given)}: only for neuron='lifplus'")
        block_cls = _BLOCKS[neuron]
        common = dict(norm=norm, iteration=iteration, **neuron_kwargs)
        blocks: list[nn.Module] = []
        h, w = height, width
        for c_in, c_out, k, s in zip((in_channels, *channels[:-1]), channels, kernels, strides, strict=True):
            blocks.append(block_cls(c_in, c_out, k, stride=s, padding=k // 2, **common))
            blocks.append(TimeDistributed(nn.MaxPool2d(2), iteration=iteration))
            h, w = _conv_out(h, k, s) // 2, _conv_out(w, k, s) // 2
        if h < 1 or w < 1:
            stages = len(channels)
            raise ValueError(f"height, width: {height}x{width} is too small for {stages} conv+pool stages")
        self.blocks = nn.Sequential(*blocks)
        self.flatten = TimeDistributed(nn.Flatten(1), iteration=iteration)
        self.feature_size = channels[-1] * h * w
        head = _mlp(self.feature_size, hidden, n_classes)
        self.head_per_step = head_per_step
        self.head = TimeDistributed(head, iteration=iteration) if head_per_step else head
        self.aggregate = TemporalAggregation(aggregation, iteration=iteration)

    def features(self, x: Tensor) -> Tensor:
        """Flattened output of the last pooling: ``[B, T, F]`` in IIM, ``[B, F]`` per step in EIM."""
        return self.flatten(self.blocks(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.head_per_step:
            return self.aggregate(self.head(self.features(x)))
        return self.head(self.aggregate(self.features(x)))


@register_model
def cifar10_dvs(
    *,
    neuron: str = "lif",
    aggregation: str = AGGREGATION,
    head_per_step: bool = HEAD_PER_STEP,
    learnable: bool = True,
    norm: str | None = "input",
    **kwargs,
) -> ConvPoolClassifier:
    """The paper's CIFAR10-DVS network: LIF, BatchNorm on the synaptic current, sum over T before the FC
    head, learned neuron parameters (see the module docstring for each source). Other keyword arguments as
    :func:`cifar10_dvs_authors` (``neuron="lifplus"``: LIF+ blocks, with their stage keywords)."""
    return cifar10_dvs_authors(
        neuron=neuron,
        aggregation=aggregation,
        head_per_step=head_per_step,
        learnable=learnable,
        norm=norm,
        **kwargs,
    )


@register_model
def cifar10_dvs_authors(
    *,
    channels: Sequence[int] = CHANNELS,
    hidden: int = HIDDEN,
    height: int = HEIGHT,
    width: int = WIDTH,
    in_channels: int = IN_CHANNELS,
    n_classes: int = N_CLASSES,
    neuron: str = "liaf",
    aggregation: str = "mean",
    head_per_step: bool = True,
    activation: str | None = None,
    liaf_mode: str | None = None,
    liaf_readout: str | None = None,
    norm: str | None = "state",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> ConvPoolClassifier:
    """CIFAR10-DVS as the authors' code builds it: ``[B, 10, 2, 128, 128]`` -> 10 logits; ConvLIAF (ReLU,
    pre-reset readout) with BatchNorm on the membrane and fixed neuron parameters; the FC head on every step,
    its outputs averaged over T. 2,625,514 trainable parameters at the default widths.

    ``channels``: the five conv widths; ``hidden``: the FC hidden width; ``height``, ``width``: the input
    frame (the FC input is ``channels[-1] * (H/64) * (W/64)``); ``activation``, ``liaf_mode``,
    ``liaf_readout``: LIAF options (``None``: the library default), only with ``neuron="liaf"``.

    ``neuron_kwargs``: the neuron keywords (``alpha``, ``beta``, ``theta``, ``v_reset``, ``reset``,
    ``sharing``, ``learnable``, ``noise``, ``surrogate``), by default
    :data:`~bidl.models.registry.AUTHORS_NEURON` and this network's training noise 0; with
    ``neuron="lifplus"`` also the LIF+ stage modes (``decay``, ``accumulation``, ``reversal``, ``trigger``,
    ``inhibition``, ``refractory``) and constants (:data:`~bidl.functional.LIFPLUS_CONSTANTS`).
    """
    if len(channels) != len(CHANNELS):
        raise ValueError(f"channels: expected {len(CHANNELS)} widths, got {list(channels)}")
    return ConvPoolClassifier(
        in_channels=in_channels,
        height=height,
        width=width,
        channels=channels,
        kernels=KERNELS,
        strides=STRIDES,
        hidden=(hidden,),
        n_classes=n_classes,
        neuron=neuron,
        aggregation=aggregation,
        head_per_step=head_per_step,
        norm=norm,
        iteration=iteration,
        **authors_neuron(neuron_kwargs, noise=0.0),
        **neuron_options(neuron, activation, liaf_mode, liaf_readout),
    )
