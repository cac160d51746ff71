r"""The Jester networks of the paper (section 5.1.1, Table 2): ResNet18 with LIAF neurons.

Source: the authors' ``ResNetLifItout`` (LynxiTech/BIDL,
``applications/classification/video/jester/resnetlif18_t16/backbone.py`` and its config
``resnetlif18-itout-b20x4-16-jester.py``: ``depth=18, nclass=27, cmode='analog', soma_params='all_share',
noise=0.001``), rebuilt from :mod:`bidl.layers` pieces. Per timestep (``c = widths``, ``b = blocks``)::

    stem     Conv2d(C_in -> c0, k7 s2 p3) -> BN -> LIAF -> MaxPool(k3 s2 p1)
    stage i  b_i basic blocks of width c_i (stride 2 in the first block of stages 2-4):
             x -> Conv2d(k3, stride) -> BN -> LIAF -> Conv2d(k3) -> BN -> (+ shortcut(x)) -> LIAF
             shortcut: identity, or ResNet-D "AvgPool(stride, ceil_mode) -> Conv2d(k1) -> BN" when the
             stride or the width changes
    head     global average pool -> mean over T (TemporalAggregation) -> Linear(c3 -> 27)

The authors' code averages the pooled features over T and applies the FC once; FC is linear, so in EIM the FC
is applied to the running mean at every step and the output after step ``T-1`` equals the IIM output.

**The authors' options, as their code runs them** (all kept by :func:`jester_v1_authors`):

- BatchNorm sits on the synaptic current, right after each conv (``nn.Sequential(Conv2d, BatchNorm2d)``);
  their ``Lif2d`` is built with ``norm_state=False``, so there is no BatchNorm on any membrane. The neuron
  after a residual sum integrates ``BN(conv2(.)) + shortcut(x)``.
- Every conv has a bias (``nn.Conv2d``'s default ``bias=True``), although a BatchNorm follows each one.
  These biases are the 4,800 parameters by which the network exceeds a torchvision-style ResNet18 with a
  27-way FC (11,190,363): stem 64 + stage 1 4x64 + stage 2 (4+1)x128 + stage 3 (4+1)x256 + stage 4 (4+1)x512
  = 64 + 256 + 640 + 1,280 + 2,560 = 4,800 (the ``+1`` is the shortcut conv). Total: **11,195,163**.
  The ResNet-D shortcut (average pool before the 1x1 conv) has the same parameters as torchvision's strided
  1x1 conv.
- Neurons: LIAF with the authors' fixed parameters alpha 0.3, beta 0, theta 0.5, v_reset 0 (buffers, not
  trained), hard reset, all-share (ASM), analog output ``ReLU(U_t)`` read before reset and leak
  (``memb_mode=(0, relu)``), training noise 1e-3.
- Every sample starts from zero membranes (IIM: each call; EIM: after :func:`bidl.reset_states`); the
  authors' non-chip path never resets its ``Lif2d`` states between batches (a bug, not reproduced).
- Input: ``[B, 16, 3, 112, 112]``. The authors' GPU pipeline does not normalise the frames (their
  ``NormalizeVideo`` step is commented out; the backbone's mean/std is applied only on their chip); input
  scaling is left to the data pipeline here.
- Their ``_lite`` variant (``resnetlif18_lite_t16``, ``ResNetLifReluItout``) keeps a neuron only after the
  first conv of each stage's first block and uses ReLU everywhere else; it has the same parameter count and
  is not built here.

**Electrical coupling (Jester v2).** The paper (section 5.1.1) replaces LIAF by "the electrical coupling
LIAF-RMP neural model (Wu et al., 2022b)" and says the electrical synapses grow the weights from 12M to 24M.
Neither the BIDL paper nor the authors' code defines the coupling (the code has no RMP and no coupling;
``lifplus.py``'s "subthreshold coupling" is an adaptation current, not a synapse between neurons). The cited
work (Wu et al. 2022, "Modeling learnable electrical synapse for high precision spatio-temporal recognition",
Neural Networks 149:184-194, the ECLIF model) says in its abstract that "membrane potentials propagate to
neighbor neurons via convolution operations"; its equations were not available to this project. The
definition chosen here (:class:`ElectricallyCoupledLIAF`):

.. math::

    E_t = K \circledast V_{t-1};\qquad U_t = X_t + V_{t-1} + E_t

then fire, soft reset (RMP: :math:`R_t = U_t - F_t\theta`), leak and read out as any LIAF. :math:`V_{t-1}` is
the layer's own state (after reset and leak) at the previous step and :math:`K` a learnable ``C -> C``
convolution of kernel ``coupling_kernel`` (3), stride 1, "same" padding, no bias, so each neuron receives the
membrane potentials of its neighbours in space and across channels. Why this form: (1) it is the ECLIF
abstract's "membrane potentials propagate to neighbor neurons via convolution"; (2) a gap-junction current
:math:`\sum_k g_{jk}(V_k - V_j)` is a convolution of :math:`V` whose centre tap absorbs
:math:`-\sum_k g_{jk}`, so a free kernel contains it; (3) using :math:`V_{t-1}` keeps the step explicit
(no implicit equation) and identical in IIM and EIM; (4) a full ``C x C x 3 x 3`` kernel per neuron layer is
what doubles ResNet18's weights as the paper says (a depthwise kernel would add only 0.04M). :math:`K` starts
at zero, so an untrained v2 network is exactly LIAF-RMP and the coupling is learnt (its gradient is nonzero
from the second step on).

With default arguments :func:`jester_v2` has **23,765,787** trainable parameters: 11,195,163 + the 17 coupling
kernels (stem 64x64x9 + stage i 4 x c_i x c_i x 9) = 11,195,163 + 12,570,624.

Shapes: IIM ``[B, T, C, H, W] -> [B, n_classes]``; EIM ``[B, C, H, W] -> [B, n_classes]`` per call (the FC of
the running mean). Reset the states (:func:`bidl.reset_states`) before every new batch in EIM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..functional import lif_step
from ..layers import TemporalAggregation, TimeDistributed
from ..neurons import LIAF
from .registry import authors_neuron, register_model

__all__ = [
    "ElectricallyCoupledLIAF",
    "LIAFBasicBlock",
    "JesterResNet",
    "jester_v1_authors",
    "jester_v1",
    "jester_v2",
]

# The architecture at the paper's size, declared once: the builders here and the baselines of these networks
# (bidl.models.baselines) take their defaults from these.
RESNET18_BLOCKS = (2, 2, 2, 2)
"""Basic blocks per stage: ResNet18."""
RESNET18_WIDTHS = (64, 128, 256, 512)
"""Widths of the four stages; the stem has the first."""
STAGE_STRIDES = (1, 2, 2, 2)
"""Stride of each stage's first block."""
STEM_KERNEL, STEM_STRIDE = 7, 2
"""Spatial kernel and stride of the stem conv (padding ``STEM_KERNEL // 2``)."""
POOL_KERNEL, POOL_STRIDE = 3, 2
"""Max-pooling after the stem (padding ``POOL_KERNEL // 2``)."""
BLOCK_KERNEL = 3
"""Spatial kernel of the basic blocks' convs (padding ``BLOCK_KERNEL // 2``)."""
IN_CHANNELS = 3
"""Input channels: RGB frames."""
N_CLASSES = 27
"""Output classes: the 27 Jester gestures."""
AGGREGATION = "mean"
"""Temporal aggregation of the pooled features before the FC (the paper's "summed at the SumLayer and then
divided by T")."""


class ElectricallyCoupledLIAF(LIAF):
    r"""LIAF with membranes coupled by a learnable convolution of the previous state (electrical synapse).

    .. math:: U_t = X_t + V_{t-1} + K \circledast V_{t-1}

    followed by the usual fire / reset / leak / readout of :class:`~bidl.LIAF` (see the module docstring for
    the source and the reasons for this definition). Works on ``[B, C, H, W]`` states only.

    Args:
        channels: C, the number of channels of the layer (the kernel is ``C -> C``).
        coupling_kernel: odd spatial size of the coupling kernel (3).
        **kwargs: as :class:`~bidl.LIAF` (``channels`` for channel sharing is taken from ``channels``).

    Example:
        >>> neuron = ElectricallyCoupledLIAF(4, reset="soft")
        >>> neuron(torch.rand(2, 5, 4, 6, 6)).shape
        torch.Size([2, 5, 4, 6, 6])
    """

    def __init__(self, channels: int, *, coupling_kernel: int = 3, **kwargs):
        if coupling_kernel % 2 != 1:
            raise ValueError(f"coupling_kernel: must be odd to keep the spatial size, got {coupling_kernel}")
        if kwargs.get("sharing") == "channel":
            kwargs.setdefault("channels", channels)
        super().__init__(**kwargs)
        self.coupling = nn.Conv2d(
            channels, channels, coupling_kernel, padding=coupling_kernel // 2, bias=False
        )
        nn.init.zeros_(self.coupling.weight)  # start as the uncoupled neuron; the coupling is learnt

    def _coupled_step(self, x: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor]:
        """One step from ``V_{t-1} = v`` (``None``: the zero initial state, which couples nothing)."""
        if v is None:
            v = torch.zeros_like(x)
        else:
            x = x + self.coupling(v)
        return lif_step(x, v, **self._step_kwargs(x.dim()))

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "internal":
            if x.dim() != 5:
                raise ValueError(
                    f"{type(self).__name__} in IIM expects [B, T, C, H, W], got {tuple(x.shape)}"
                )
            v, outputs = None, []
            for t in range(x.shape[1]):
                y, v = self._coupled_step(x[:, t], v)
                outputs.append(y)
            return torch.stack(outputs, 1)
        if self.v is not None and self.v.shape != x.shape:
            raise RuntimeError(
                f"{type(self).__name__}: input shape {tuple(x.shape)} differs from the held state "
                f"{tuple(self.v.shape)}; call bidl.reset_states(network) before a new batch"
            )
        y, self.v = self._coupled_step(x, self.v)
        return y


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """Conv2d (with bias, as the authors' code) followed by BatchNorm on its output (the synaptic current)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
    )


class LIAFBasicBlock(nn.Module):
    """ResNet basic block with a neuron after the first conv and after the residual sum.

    ``x -> conv3x3(stride) -> BN -> neuron -> conv3x3 -> BN -> (+ shortcut(x)) -> neuron``; the shortcut is
    the identity, or (ResNet-D) ``AvgPool(stride, ceil_mode) -> conv1x1 -> BN`` when the stride or the width
    changes. Convs run on all frames at once in IIM (``[B, T, ...]``), on one frame per call in EIM.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        make_neuron: Callable[[int], nn.Module],
        iteration: str = "internal",
    ):
        super().__init__()
        k = BLOCK_KERNEL
        self.conv1 = TimeDistributed(_conv_bn(in_channels, out_channels, k, stride, k // 2), iteration)
        self.neuron1 = make_neuron(out_channels)
        self.conv2 = TimeDistributed(_conv_bn(out_channels, out_channels, k, 1, k // 2), iteration)
        if stride != 1 or in_channels != out_channels:
            pool = [nn.AvgPool2d(stride, ceil_mode=True)] if stride != 1 else []
            shortcut = nn.Sequential(*pool, *_conv_bn(in_channels, out_channels, 1, 1, 0))
            self.shortcut = TimeDistributed(shortcut, iteration)
        else:
            self.shortcut = None
        self.neuron2 = make_neuron(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.neuron2(self.conv2(self.neuron1(self.conv1(x))) + identity)


class JesterResNet(nn.Module):
    """ResNet with LIAF neurons, per-step global average pooling, mean over T and an FC classifier.

    Input ``[B, T, in_channels, H, W]`` in IIM (``[B, in_channels, H, W]`` per step in EIM); output
    ``[B, n_classes]`` logits (in EIM: the logits of the running mean up to the current step). The spatial
    size is free (global pooling); the paper uses 112 (v1) and 224 (v2).

    Args:
        in_channels: input channels (3, RGB).
        n_classes: classes (27).
        widths: the four stage widths (64, 128, 256, 512); the stem has ``widths[0]`` channels.
        blocks: basic blocks per stage ((2, 2, 2, 2): ResNet18).
        coupling: electrically coupled neurons (:class:`ElectricallyCoupledLIAF`) instead of plain LIAF.
        coupling_kernel: spatial size of the coupling kernel.
        aggregation: temporal aggregation before the FC (``"mean"``, the authors' and the paper's).
        iteration: ``"internal"`` (IIM) or ``"external"`` (EIM).
        **neuron_kwargs: the LIAF arguments (alpha, beta, theta, v_reset, reset, sharing, learnable, noise,
            surrogate, activation, liaf_mode, liaf_readout).
    """

    def __init__(
        self,
        *,
        in_channels: int = IN_CHANNELS,
        n_classes: int = N_CLASSES,
        widths: Sequence[int] = RESNET18_WIDTHS,
        blocks: Sequence[int] = RESNET18_BLOCKS,
        coupling: bool = False,
        coupling_kernel: int = 3,
        aggregation: str = AGGREGATION,
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"widths, blocks: expected 4 stages each, got {list(widths)} and {list(blocks)}")

        def make_neuron(channels: int) -> nn.Module:
            if coupling:
                return ElectricallyCoupledLIAF(
                    channels, coupling_kernel=coupling_kernel, iteration=iteration, **neuron_kwargs
                )
            kwargs = dict(neuron_kwargs)
            if kwargs.get("sharing") == "channel":
                kwargs.setdefault("channels", channels)
            return LIAF(iteration=iteration, **kwargs)

        stem = _conv_bn(in_channels, widths[0], STEM_KERNEL, STEM_STRIDE, STEM_KERNEL // 2)
        self.stem = TimeDistributed(stem, iteration)
        self.stem_neuron = make_neuron(widths[0])
        pool = nn.MaxPool2d(POOL_KERNEL, stride=POOL_STRIDE, padding=POOL_KERNEL // 2)
        self.pool = TimeDistributed(pool, iteration)
        stages, channels = [], widths[0]
        for width, count, stride in zip(widths, blocks, STAGE_STRIDES, strict=True):
            stage = []
            for block in range(count):
                stage.append(
                    LIAFBasicBlock(channels, width, stride if block == 0 else 1, make_neuron, iteration)
                )
                channels = width
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.global_pool = TimeDistributed(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)), iteration)
        self.aggregate = TemporalAggregation(aggregation, iteration=iteration)
        self.fc = nn.Linear(channels, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled features of every step: ``[B, T, C]`` (IIM) or ``[B, C]`` (EIM)."""
        x = self.pool(self.stem_neuron(self.stem(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.global_pool(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.aggregate(self.features(x)))


@register_model
def jester_v1_authors(
    *,
    widths: Sequence[int] = RESNET18_WIDTHS,
    blocks: Sequence[int] = RESNET18_BLOCKS,
    in_channels: int = IN_CHANNELS,
    n_classes: int = N_CLASSES,
    activation: str = "relu",
    liaf_mode: str = "NTR",
    liaf_readout: str = "pre_reset",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> JesterResNet:
    """Jester v1 as the authors' code builds it: ResNet18-LIAF, ``[B, 16, 3, 112, 112]`` -> 27 logits.

    BN on the synaptic currents, biased convs, fixed LIAF parameters (alpha 0.3, theta 0.5, hard reset, ASM),
    analog output ``ReLU(U_t)`` before reset (``liaf_readout="pre_reset"``), training noise 1e-3. 11,195,163
    trainable parameters with the defaults (see the module docstring for where they come from).

    ``neuron_kwargs``: the neuron keywords (``alpha``, ``beta``, ``theta``, ``v_reset``, ``reset``,
    ``sharing``, ``learnable``, ``noise``, ``surrogate``), by default
    :data:`~bidl.models.registry.AUTHORS_NEURON` and this network's training noise 1e-3.
    """
    return JesterResNet(
        widths=widths,
        blocks=blocks,
        in_channels=in_channels,
        n_classes=n_classes,
        coupling=False,
        coupling_kernel=3,
        iteration=iteration,
        **authors_neuron(neuron_kwargs, noise=1e-3),
        activation=activation,
        liaf_mode=liaf_mode,
        liaf_readout=liaf_readout,
    )


@register_model
def jester_v1(*, liaf_readout: str = "pre_reset", **kwargs) -> JesterResNet:
    """Jester v1 as the paper describes it (section 5.1.1): ``[B, 16, 3, 112, 112]`` -> 27 logits; keyword
    arguments as :func:`jester_v1_authors`.

    The same architecture and parameters as :func:`jester_v1_authors` (11,195,163 trainable): the paper's
    "ResNet-18 with LIAF", "summed at the SumLayer and then divided by T" then FC, ASM (Table 2). The paper
    says nothing that differs from the authors' code about the layers, BN placement, neuron constants (it
    does not make them learnable for Jester) or training noise, so those are the authors'. The LIAF readout:

    - default ``liaf_readout="pre_reset"``: ``f(U_t)``, the membrane before reset and leak, as the authors'
      ``Lif`` reads it (``memb_mode=(0, relu)``, ``layers/lif.py``), the code that produced the paper's
      numbers; with it this builder builds exactly :func:`jester_v1_authors`.
    - ``liaf_readout="post_leak"``: the paper's eq. 11 taken literally, ``f(V_t)``, the membrane after reset
      and leak (a named variant). With the hard reset it makes a neuron that fires output
      ``f(alpha v_reset + beta) = 0`` and bounds the others' output by ``alpha theta`` (0.15): activity is
      small and carried by the sub-threshold neurons.
    """
    return jester_v1_authors(liaf_readout=liaf_readout, **kwargs)


@register_model
def jester_v2(
    *,
    widths: Sequence[int] = RESNET18_WIDTHS,
    blocks: Sequence[int] = RESNET18_BLOCKS,
    in_channels: int = IN_CHANNELS,
    n_classes: int = N_CLASSES,
    coupling: bool = True,
    coupling_kernel: int = 3,
    activation: str = "relu",
    liaf_mode: str = "NTR",
    liaf_readout: str = "pre_reset",
    iteration: str = "internal",
    **neuron_kwargs: Any,
) -> JesterResNet:
    """Jester v2 (paper section 5.1.1): ResNet18 with electrically coupled LIAF-RMP, ``[B, 16, 3, 224, 224]``.

    The v1 network (:func:`jester_v1`, readout ``f(U_t)`` before reset by default) with every LIAF replaced by
    :class:`ElectricallyCoupledLIAF` with the RMP soft reset (``reset="soft"``: ``R_t = U_t - F_t theta``,
    Han et al. 2020, paper eq. 9). The coupling ``U_t = X_t + V_{t-1} + K * V_{t-1}`` (a learnable 3x3
    ``C -> C`` convolution of the previous membrane, zero at initialisation) is this project's definition
    from the cited ECLIF work (Wu et al. 2022b); the BIDL paper and the authors' code do not define it (see
    the module docstring). 23,765,787 trainable parameters with the defaults (the paper: "12 x 10^6 to
    24 x 10^6"). The 224 x 224 input only changes the data: the network pools globally.

    ``liaf_readout``: ``"pre_reset"`` (default, ``f(U_t)`` before reset and leak, as the authors' ``Lif``
    reads it) or ``"post_leak"`` (the paper's eq. 11 taken literally, ``f(V_t)`` after the soft reset and
    leak; a named variant).

    ``neuron_kwargs``: the neuron keywords (``alpha``, ``beta``, ``theta``, ``v_reset``, ``reset``,
    ``sharing``, ``learnable``, ``noise``, ``surrogate``), by default
    :data:`~bidl.models.registry.AUTHORS_NEURON` and this network's training noise 1e-3 and soft reset.
    """
    return JesterResNet(
        widths=widths,
        blocks=blocks,
        in_channels=in_channels,
        n_classes=n_classes,
        coupling=coupling,
        coupling_kernel=coupling_kernel,
        iteration=iteration,
        **authors_neuron(neuron_kwargs, noise=1e-3, reset="soft"),
        activation=activation,
        liaf_mode=liaf_mode,
        liaf_readout=liaf_readout,
    )
