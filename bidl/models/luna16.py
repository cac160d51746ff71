"""The Luna16Cls network of the paper (section 5.1.3, Table 2; authors' ``SeqClif3Fc3LcItout``).

Three ConvLIF blocks, each followed by 2x2 max-pooling of its output, a temporal mean and a three-layer FC
head; the 8 slices of a nodule-centred CT cube are the 8 timesteps::

    [B, 8, 1, 32, 32] -> ConvLIF(1->32, k3 p1) -> MaxPool2 -> ConvLIF(32->64) -> MaxPool2
    -> ConvLIF(64->128) -> MaxPool2 -> [B, T, 128, 4, 4] -> flatten 2048
    -> {mean over T, FC 2048->512, ReLU, FC 512->128, ReLU, FC 128->2}

Paper (:func:`luna16_cls`) vs authors' code (:func:`luna16_cls_authors`, config
``clif3fc3lc/clif3fc3lc_itout-b16x1-luna16cls.py`` and ``luna16cls/backbone.py``):

- neuron: paper "three Conv2DLIF blocks" (section 5.1.3; Table 2: LIF) -> ``neuron="lif"``; the config sets
  ``cmode='analog'`` -> LIAF (ReLU of the membrane before reset, ``liaf_readout="pre_reset"``).
- aggregation and head: paper "a temporal average layer is used to aggregate information along the time
  dimension. The model ends with an FcBlock, containing three fully connected layers" -> the features are
  averaged over T, then the head runs once; ``SeqClif3Fc3LcItout.forward`` runs the head on every step and
  averages its outputs (``xo = xo + x5 / self.timestep``), ``head_per_step=True``.
- BatchNorm: the paper's ST block is "convolution, batch normalization, and LIF" (section 2) -> BN on the
  synaptic current, ``norm="input"``; their ``Conv2dLif(norm_state=True)`` puts it on the membrane,
  ``norm="state"``. Same parameter count either way.
- neuron parameters: learned in the paper's variant (SPEC section 1; the paper only says "The neural
  parameters are set to all-share mode", section 5.1.3), fixed in the authors' code: alpha 0.3, beta 0,
  theta 0.5, v_reset 0. ASM in both.

Shared, from the authors' code where the paper is silent: 3x3 convs with stride 1 and padding 1, pooling
after the neuron, FcBlock ``Linear -> ReLU -> Linear -> ReLU -> Linear`` without BatchNorm, training noise 0.
With the default widths ``luna16_cls_authors`` has exactly the authors' 1,208,130 trainable parameters;
``luna16_cls`` adds the 3 x 4 learned neuron scalars (1,208,142).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cifar10_dvs import ConvPoolClassifier, neuron_options
from .registry import authors_neuron, register_model

__all__ = ["luna16_cls", "luna16_cls_authors"]

# The architecture at the paper's size, declared once: the builders here and the baselines of this network
# (bidl.models.baselines) take their defaults from these.
IN_CHANNELS = 1
"""Input channels: one CT slice per step."""
HEIGHT, WIDTH = 32, 32
"""Input slice size (a nodule-centred 32 x 32 crop)."""
CHANNELS = (32, 64, 128)
"""Widths of the three ConvLIF blocks."""
KERNELS = (3, 3, 3)
"""Spatial kernel of each conv (padding ``kernel // 2``)."""
STRIDES = (1, 1, 1)
"""Stride of each conv (each block is followed by a 2x2 max-pooling)."""
HIDDEN = (512, 128)
"""Widths of the FC head's two hidden layers."""
N_CLASSES = 2
"""Output classes: nodule or not."""
AGGREGATION = "mean"
"""Temporal aggregation of the features before the head (the paper's temporal average layer)."""
HEAD_PER_STEP = False
"""The paper's head placement: once, after the temporal aggregation (the authors' code: on every step)."""


@register_model
def luna16_cls(
    *,
    neuron: str = "lif",
    head_per_step: bool = HEAD_PER_STEP,
    learnable: bool = True,
    norm: str | None = "input",
    **kwargs,
) -> ConvPoolClassifier:
    """The paper's Luna16Cls network: LIF, BatchNorm on the synaptic current, mean over T before the FC head,
    learned neuron parameters (see the module docstring for each source). Other keyword arguments as
    :func:`luna16_cls_authors`."""
    return luna16_cls_authors(
        neuron=neuron, head_per_step=head_per_step, learnable=learnable, norm=norm, **kwargs
    )


@register_model
def luna16_cls_authors(
    *,
    channels: Sequence[int] = CHANNELS,
    hidden: Sequence[int] = HIDDEN,
    height: int = HEIGHT,
    width: int = WIDTH,
    in_channels: int = IN_CHANNELS,
    n_classes: int = N_CLASSES,
    neuron: str = "liaf",
    aggregation: str = AGGREGATION,
    head_per_step: bool = True,
    activation: str | None = None,
    liaf_mode: str | None = None,
    liaf_readout: str | None = None,
    norm: str | None = "state",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> ConvPoolClassifier:
    """Luna16Cls as the authors' code builds it: ``[B, 8, 1, 32, 32]`` -> 2 logits; ConvLIAF (ReLU,
    pre-reset readout) with BatchNorm on the membrane and fixed neuron parameters; the FC head on every step,
    its outputs averaged over T. 1,208,130 trainable parameters at the default widths.

    ``channels``: the three conv widths; ``hidden``: the two FC hidden widths; ``height``, ``width``: the
    input slice (the FC input is ``channels[-1] * (H/8) * (W/8)``); ``activation``, ``liaf_mode``,
    ``liaf_readout``: LIAF options (``None``: the library default), only with ``neuron="liaf"``.

    ``neuron_kwargs``: the neuron keywords (``alpha``, ``beta``, ``theta``, ``v_reset``, ``reset``,
    ``sharing``, ``learnable``, ``noise``, ``surrogate``), by default
    :data:`~bidl.models.registry.AUTHORS_NEURON` and this network's training noise 0.
    """
    if len(channels) != len(CHANNELS):
        raise ValueError(f"channels: expected {len(CHANNELS)} widths, got {list(channels)}")
    if len(hidden) != len(HIDDEN):
        raise ValueError(f"hidden: expected {len(HIDDEN)} widths, got {list(hidden)}")
    return ConvPoolClassifier(
        in_channels=in_channels,
        height=height,
        width=width,
        channels=channels,
        kernels=KERNELS,
        strides=STRIDES,
        hidden=hidden,
        n_classes=n_classes,
        neuron=neuron,
        aggregation=aggregation,
        head_per_step=head_per_step,
        norm=norm,
        iteration=iteration,
        **authors_neuron(neuron_kwargs, noise=0.0),
        **neuron_options(neuron, activation, liaf_mode, liaf_readout),
    )
