"""The DVS128 Gesture network of the paper (section 5.1.2, Table 2; authors' ``SeqClif3Flif2DgItout``).

``BN(2) -> ConvLIF(2->64, k3 s2 p1) -> ConvLIF(64->128) -> ConvLIF(128->256) -> FCLIF(256*H/8*W/8 -> 256)
-> FCLIF(256 -> 11) -> mean over T`` (the output is the mean spike rate of the 11 class neurons). Every ST
block has BatchNorm on its membrane (the authors' ``norm_state``); neuron parameters are fixed (alpha 0.3,
theta 0.5). With the paper's widths this has exactly the authors' 2,013,157 trainable parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..layers import FCLIF, ConvLIF, TemporalAggregation, TimeDistributed
from .registry import authors_neuron, register_model

__all__ = ["DVS128GestureNet", "dvs128_gesture"]

# The architecture at the paper's size, declared once: the builders here and the baselines of this network
# (bidl.models.baselines) take their defaults from these.
IN_CHANNELS = 2
"""Input channels: the ON and OFF event counts of a frame."""
HEIGHT, WIDTH = 40, 40
"""Input frame size (the 128 x 128 sensor binned to 40 x 40 by the data pipeline)."""
CHANNELS = (64, 128, 256)
"""Widths of the three ConvLIF blocks."""
KERNEL, STRIDE = 3, 2
"""Spatial kernel and stride of every conv (padding ``KERNEL // 2``)."""
HIDDEN = 256
"""Width of the hidden FCLIF block."""
N_CLASSES = 11
"""Output neurons: the 11 gestures."""
AGGREGATION = "mean"
"""Temporal aggregation of the output spikes (the mean spike rate)."""


class DVS128GestureNet(nn.Module):
    """Three ConvLIF and two FCLIF blocks with a mean-rate readout.

    Input ``[B, T, 2, H, W]`` in IIM (``[B, 2, H, W]`` per step in EIM); output ``[B, n_classes]``: the mean
    spike rate of each class neuron (in EIM: the running mean up to the current step).
    """

    def __init__(
        self,
        *,
        in_channels: int = IN_CHANNELS,
        height: int = HEIGHT,
        width: int = WIDTH,
        n_classes: int = N_CLASSES,
        channels: Sequence[int] = CHANNELS,
        hidden: int = HIDDEN,
        aggregation: str = AGGREGATION,
        norm: str | None = "state",
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels: expected 3 widths, got {list(channels)}")
        c1, c2, c3 = channels
        common = dict(norm=norm, iteration=iteration, **neuron_kwargs)
        self.input_norm = TimeDistributed(nn.BatchNorm2d(in_channels), iteration=iteration)
        self.conv1 = ConvLIF(in_channels, c1, KERNEL, stride=STRIDE, padding=KERNEL // 2, **common)
        self.conv2 = ConvLIF(c1, c2, KERNEL, stride=STRIDE, padding=KERNEL // 2, **common)
        self.conv3 = ConvLIF(c2, c3, KERNEL, stride=STRIDE, padding=KERNEL // 2, **common)
        spatial = _conv_out(_conv_out(_conv_out(height))) * _conv_out(_conv_out(_conv_out(width)))
        self.fc1 = FCLIF(c3 * spatial, hidden, **common)
        self.fc2 = FCLIF(hidden, n_classes, **common)
        self.aggregate = TemporalAggregation(aggregation, iteration=iteration)
        # the class scores from the aggregated output neurons: the identity here; a population-coded head
        # (bidl.colearning.with_population_head) decodes 7 neurons per class
        self.readout: nn.Module = nn.Identity()

    def features(self, x: Tensor) -> Tensor:
        """The backbone: input to the hidden FCLIF's spikes."""
        x = self.input_norm(x)
        x = self.conv3(self.conv2(self.conv1(x)))
        return self.fc1(x)

    backbone = ("input_norm", "conv1", "conv2", "conv3", "fc1")
    """The modules :meth:`features` runs; :meth:`tail` runs the rest."""

    def tail(self, h: Tensor) -> Tensor:
        """The network after the backbone: the hidden FCLIF's spikes to the class scores."""
        return self.readout(self.aggregate(self.fc2(h)))

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.features(x))


def _conv_out(size: int, kernel: int = KERNEL, stride: int = STRIDE) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@register_model
def dvs128_gesture(*, learnable: bool = True, **kwargs) -> DVS128GestureNet:
    """The paper's DVS128 Gesture network: as :func:`dvs128_gesture_authors`, with the neuron parameters
    learned by BPTT ("The neuron parameters were trained in the all-share mode", paper section 5.1.2; in CSM
    one value per channel). Keyword arguments as :func:`dvs128_gesture_authors`."""
    return dvs128_gesture_authors(learnable=learnable, **kwargs)


@register_model
def dvs128_gesture_authors(
    *,
    sharing: str = "all",
    channels: Sequence[int] = CHANNELS,
    hidden: int = HIDDEN,
    height: int = HEIGHT,
    width: int = WIDTH,
    n_classes: int = N_CLASSES,
    norm: str | None = "state",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> DVS128GestureNet:
    """DVS128 Gesture network as the authors' code builds it (``clif3flif2dg_itout-b16x1-dvsgesture.py``):
    ``[B, 60, 2, 40, 40]`` -> 11 mean spike rates, BatchNorm on the membrane, fixed neuron parameters
    (alpha 0.3, theta 0.5, no training noise: the config sets ``noise=0``, where the class default of the
    authors' neuron is 1e-3); ASM or CSM via ``sharing``. 2,013,157 trainable parameters
    at the default widths. ``neuron_kwargs``: neuron keywords (``alpha``, ``learnable``, ``noise``, ...), by
    default :data:`~bidl.models.registry.AUTHORS_NEURON`."""
    return DVS128GestureNet(
        height=height,
        width=width,
        n_classes=n_classes,
        channels=channels,
        hidden=hidden,
        norm=norm,
        iteration=iteration,
        **authors_neuron(neuron_kwargs, noise=0.0, sharing=sharing),
    )
