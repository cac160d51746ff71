"""Non-spiking twins of the paper's networks: the same architecture, built by the same builder from the same
keywords, with a ReLU (:class:`~bidl.neurons.ReLUNeuron`) in place of every neuron.

A twin keeps every synapse, pooling, BatchNorm (the neuron's BatchNorm on the membrane becomes the twin's
BatchNorm on the step's input), shortcut, temporal aggregation and readout of its network, and loses the
neurons' membranes, thresholds and spikes: each step's output depends on that step's input alone. Trained
with its network's recipe on its network's data, it is the control that shows what spiking itself (the
membrane's memory and the binary events) costs or gives. The neuron keywords of the network's
``model_kwargs`` are taken and have nothing left to act on.

``<model>_relu`` is registered for every paper network an experiment trains (:data:`TWINS`); Table 3 lists
the twin as a baseline of kind ``relu`` (:func:`bidl.models.baselines.baseline_kind`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..neurons import LIF, ReLUNeuron
from .cifar10_dvs import cifar10_dvs
from .dvs128 import dvs128_gesture
from .imdb import imdb
from .luna16 import luna16_cls
from .registry import register_model
from .resnet import jester_v1, jester_v2
from .rgb_gesture import rgb_gesture

__all__ = [
    "TWINS",
    "non_spiking_twin",
    "cifar10_dvs_relu",
    "dvs128_gesture_relu",
    "imdb_relu",
    "jester_v1_relu",
    "jester_v2_relu",
    "luna16_cls_relu",
    "rgb_gesture_relu",
]


def non_spiking_twin(model: nn.Module) -> nn.Module:
    """Replace, in place, every neuron of ``model`` (:class:`~bidl.neurons.LIF` and its subclasses: LIAF,
    LIF+, the electrically coupled LIAF) by a :class:`~bidl.neurons.ReLUNeuron` that keeps the neuron's
    BatchNorm on the membrane and its iteration mode; returns ``model``. A network without neurons is
    refused (``ValueError``): it has no twin.

    Example:
        >>> import torch
        >>> from bidl import ConvLIF
        >>> twin = non_spiking_twin(nn.Sequential(ConvLIF(2, 4, 3, padding=1)))
        >>> type(twin[0].neuron).__name__, twin(torch.rand(1, 5, 2, 8, 8)).shape
        ('ReLUNeuron', torch.Size([1, 5, 4, 8, 8]))
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LIF):
                setattr(parent, name, ReLUNeuron(norm=child.norm, iteration=child.iteration))
                replaced += 1
    if not replaced:
        raise ValueError(f"non_spiking_twin: {type(model).__name__} has no neuron to replace")
    return model


@register_model
def dvs128_gesture_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.dvs128.dvs128_gesture` (same keywords)."""
    return non_spiking_twin(dvs128_gesture(**kwargs))


@register_model
def rgb_gesture_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.rgb_gesture.rgb_gesture` (same keywords)."""
    return non_spiking_twin(rgb_gesture(**kwargs))


@register_model
def cifar10_dvs_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.cifar10_dvs.cifar10_dvs` (same keywords)."""
    return non_spiking_twin(cifar10_dvs(**kwargs))


@register_model
def luna16_cls_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.luna16.luna16_cls` (same keywords)."""
    return non_spiking_twin(luna16_cls(**kwargs))


@register_model
def imdb_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.imdb.imdb` (same keywords)."""
    return non_spiking_twin(imdb(**kwargs))


@register_model
def jester_v1_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.resnet.jester_v1` (same keywords)."""
    return non_spiking_twin(jester_v1(**kwargs))


@register_model
def jester_v2_relu(**kwargs: Any) -> nn.Module:
    """The non-spiking twin of :func:`~bidl.models.resnet.jester_v2` (same keywords)."""
    return non_spiking_twin(jester_v2(**kwargs))


TWINS: dict[str, str] = {
    twin.__name__.removesuffix("_relu"): twin.__name__
    for twin in (
        dvs128_gesture_relu,
        rgb_gesture_relu,
        cifar10_dvs_relu,
        luna16_cls_relu,
        imdb_relu,
        jester_v1_relu,
        jester_v2_relu,
    )
}
"""Paper network -> its registered non-spiking twin (``<network>_relu``)."""
