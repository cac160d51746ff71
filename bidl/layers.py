"""Spatio-temporal (ST) blocks and temporal aggregation.

An ST block is ``synapse (conv or linear) -> optional pooling -> optional BatchNorm on the synaptic current
-> neuron (LIF, LIAF or LIF+, optionally with BatchNorm on its membrane)``. ``norm="state"`` puts BatchNorm on
the membrane inside the neuron step (the authors' ``norm_state=True``); ``norm="input"`` puts it on the
synaptic current, which in IIM runs once over all ``B*T`` frames; ``norm=None`` uses none.

Default placements (what trained best; the paper's and the authors' networks pass ``norm`` explicitly):
``"input"`` for :class:`FCLIF`, :class:`FCLIAF`, :class:`FCLIFPlus` and :class:`ConvLIAF`, ``None`` for
:class:`ConvLIF` and :class:`ConvLIFPlus`. Measured with ``tools/measure_norm_defaults.py`` (CPU, one
thread): two synthetic tasks where only the order of events separates half the classes (50 % for a model
blind to order), fixed neurons (alpha 0.8, theta 0.5), Adam, 15 epochs, trained in training mode and scored
in evaluation mode (running BatchNorm statistics); mean test accuracy (%) of seeds 0, 1, 2:

==================================  =======  =======  ======
network, task                        state    input    None
==================================  =======  =======  ======
FCLIAF x2, order, lr 1e-2             73.5     99.5     50.2
FCLIAF x2, order, lr 3e-3             55.9     99.6     53.4
FCLIF x2, order, lr 1e-2              77.9     96.1     61.1
FCLIF x2, order, lr 3e-3              71.5     91.9     71.5
ConvLIF x2, motion, lr 1e-2           34.8     48.6     93.2
ConvLIF x2, motion, lr 3e-3           30.7     37.4     78.6
ConvLIF x2, motion, 3072 samples      82.6     67.6     99.6
ConvLIAF x2, motion, lr 1e-2          34.8     99.9     68.6
ConvLIAF x2, motion, lr 3e-3          29.3     94.5     49.8
ConvLIAF x2, motion, 3072 samples     89.9    100.0     74.7
==================================  =======  =======  ======

(1024 training samples unless stated; ``--lr 3e-3``; ``--nets conv_lif conv_liaf --train 3072``.) BatchNorm
on the membrane came last or near last everywhere, with a train/evaluation gap (FCLIAF at lr 1e-2: 90.3 % on
its training batches in training mode, 73.5 % on the test set in evaluation mode). Spiking conv blocks did
best without BatchNorm: with it on the current, ConvLIF fit its training set (99.6 % with 3072 samples) but
scored 26.8-97.3 % in evaluation, and on seed 0 (1024 samples) the test accuracy was 70.5 % with batch
statistics against 49.8 % with the running ones. ConvLIAF without BatchNorm failed to train on one seed of
three at every setting.

Shapes (batch-first): IIM ``[B, T, C, H, W] -> [B, T, C', H', W']`` (conv) and ``[B, T, ...] -> [B, T, F]``
(linear, trailing dims flattened); EIM the same without T, one step per call.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .neurons import LIAF, LIF, LIFPlus
from .state import SpatioTemporalModule, StatefulModule

__all__ = [
    "NORM_PLACEMENTS",
    "AGGREGATIONS",
    "TimeDistributed",
    "STBlock",
    "ConvLIF",
    "ConvLIAF",
    "ConvLIFPlus",
    "FCLIF",
    "FCLIAF",
    "FCLIFPlus",
    "TemporalAggregation",
]

NORM_PLACEMENTS = ("state", "input", None)
AGGREGATIONS = ("sum", "mean", "last")


class TimeDistributed(SpatioTemporalModule):
    """Apply a stateless module to every timestep: on ``[B*T, ...]`` at once in IIM, per call in EIM."""

    def __init__(self, module: nn.Module, iteration: str = "internal"):
        super().__init__(iteration)
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "external":
            return self.module(x)
        b, t = x.shape[:2]
        y = self.module(x.reshape(b * t, *x.shape[2:]))
        return y.reshape(b, t, *y.shape[1:])


class STBlock(SpatioTemporalModule):
    """Synapse, optional pooling and norm, neuron: the common body of the ST blocks (``norm``: ``"input"``,
    ``"state"`` or ``None``, see the module docstring)."""

    def __init__(
        self,
        synapse: nn.Module,
        out_channels: int,
        *,
        spatial_dims: int,
        neuron_cls: type[LIF],
        pooling: int | None = None,
        pool_type: str = "max",
        norm: str | None = "input",
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__(iteration)
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm: unknown placement {norm!r}; choose one of {NORM_PLACEMENTS}")
        self.synapse = synapse
        self.spatial_dims = spatial_dims
        if pooling:
            if spatial_dims != 2:
                raise ValueError("pooling: only convolutional blocks can pool")
            pool_cls = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool_type]
            self.pool = pool_cls(pooling)
        else:
            self.pool = None
        bn_cls = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm1d
        self.input_norm = bn_cls(out_channels) if norm == "input" else None
        if neuron_kwargs.get("sharing") == "channel":
            neuron_kwargs.setdefault("channels", out_channels)
        state_norm = bn_cls(out_channels) if norm == "state" else None
        self.neuron = neuron_cls(norm=state_norm, iteration=iteration, **neuron_kwargs)
        self.plasticity = None  # a bidl.plasticity.Plasticity, attached with attach_plasticity(block, rule)

    def _current(self, x: Tensor) -> Tensor:
        """Synaptic current of a batch of frames ``[N, ...]``."""
        if self.spatial_dims == 0:
            x = x.flatten(1)
        y = self.synapse(x)
        if self.pool is not None:
            y = self.pool(y)
        if self.input_norm is not None:
            y = self.input_norm(y)
        return y

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "external":
            y = self.neuron(self._current(x))
            if self.plasticity is not None:  # local learning, streamed per step (detached in IIM)
                membrane = getattr(self.neuron, "v", None)
                self.plasticity.observe(x, y, membrane if isinstance(membrane, Tensor) else None)
            return y
        b, t = x.shape[:2]
        current = self._current(x.reshape(b * t, *x.shape[2:]))
        return self.neuron(current.reshape(b, t, *current.shape[1:]))


class ConvLIF(STBlock):
    """Conv2d -> [MaxPool] -> [BN] -> LIF. Keyword arguments beyond the conv's go to :class:`~bidl.LIF`; by
    default no BatchNorm (``norm=None``; ``"input"``: on the synaptic current, ``"state"``: on the membrane).

    Example:
        >>> import torch
        >>> block = ConvLIF(2, 8, 3, stride=2, padding=1)
        >>> block(torch.rand(4, 10, 2, 16, 16)).shape
        torch.Size([4, 10, 8, 8, 8])
    """

    neuron_cls: type[LIF] = LIF

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool = True,
        pooling: int | None = None,
        pool_type: str = "max",
        norm: str | None = None,
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        super().__init__(
            conv,
            out_channels,
            spatial_dims=2,
            neuron_cls=self.neuron_cls,
            pooling=pooling,
            pool_type=pool_type,
            norm=norm,
            iteration=iteration,
            **neuron_kwargs,
        )


class ConvLIAF(ConvLIF):
    """Conv2d -> [MaxPool] -> [BN] -> LIAF (analog output). Arguments as :class:`ConvLIF`; by default
    BatchNorm on the synaptic current (``norm="input"``)."""

    neuron_cls = LIAF

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        norm: str | None = "input",
        **kwargs,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, norm=norm, **kwargs)


class ConvLIFPlus(ConvLIF):
    """Conv2d -> [MaxPool] -> [BN] -> LIF+ (:class:`~bidl.LIFPlus`; its stage modes and constants are keyword
    arguments)."""

    neuron_cls = LIFPlus


class FCLIF(STBlock):
    """Linear -> [BN] -> LIF; inputs with more trailing dims are flattened first. By default BatchNorm on the
    synaptic current (``norm="input"``; ``"state"``: on the membrane, ``None``: none).

    Example:
        >>> import torch
        >>> FCLIF(64, 10)(torch.rand(4, 10, 4, 4, 4)).shape
        torch.Size([4, 10, 10])
    """

    neuron_cls: type[LIF] = LIF

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        norm: str | None = "input",
        iteration: str = "internal",
        **neuron_kwargs,
    ):
        super().__init__(
            nn.Linear(in_features, out_features, bias=bias),
            out_features,
            spatial_dims=0,
            neuron_cls=self.neuron_cls,
            norm=norm,
            iteration=iteration,
            **neuron_kwargs,
        )


class FCLIAF(FCLIF):
    """Linear -> [BN] -> LIAF (analog output)."""

    neuron_cls = LIAF


class FCLIFPlus(FCLIF):
    """Linear -> [BN] -> LIF+ (:class:`~bidl.LIFPlus`)."""

    neuron_cls = LIFPlus


class TemporalAggregation(StatefulModule):
    r"""Aggregate over time: ``sum``, ``mean`` or ``last``.

    IIM: ``[B, T, ...] -> [B, ...]``. EIM: an accumulator :math:`Acc(t) = Acc(t-1) + x_t` (reset to 0) and a
    step count; each call returns the aggregate so far (``Acc``, ``Acc / n`` or ``x_t``), so reading it after
    step ``T-1`` gives the IIM result. The EIM state (:meth:`get_state`) is the accumulator for ``sum``, the
    accumulator and the count (a tensor ``[B, 1, ...]``, so that an exported step graph carries it) for
    ``mean``, nothing for ``last``.
    """

    def __init__(self, mode: str = "mean", iteration: str = "internal"):
        super().__init__(iteration)
        if mode not in AGGREGATIONS:
            raise ValueError(f"aggregation: unknown mode {mode!r}; choose one of {AGGREGATIONS}")
        self.mode = mode
        self.accumulator: Tensor | None = None
        self.steps: int | Tensor = 0

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "internal":
            if self.mode == "sum":
                return x.sum(1)
            if self.mode == "mean":
                return x.mean(1)
            return x[:, -1]
        if self.mode == "last":
            self.steps = self.steps + 1
            return x
        self.accumulator = x if self.accumulator is None else self.accumulator + x
        self.steps = self.steps + 1
        return self.accumulator if self.mode == "sum" else self.accumulator / self.steps

    def reset_state(self) -> None:
        """Set the accumulator back to zero."""
        self.accumulator = None
        self.steps = 0

    def _state_names(self) -> tuple[str, ...]:
        return {"sum": ("accumulator",), "mean": ("accumulator", "steps"), "last": ()}[self.mode]

    def get_state(self) -> dict[str, Tensor]:
        if self.mode == "last" or self.accumulator is None:
            return {}
        state = {"accumulator": self.accumulator}
        if self.mode == "mean":
            steps = self.steps
            if not isinstance(steps, Tensor):
                shape = (self.accumulator.shape[0],) + (1,) * (self.accumulator.dim() - 1)
                steps = self.accumulator.new_full(shape, float(steps))
            state["steps"] = steps
        return state

    def set_state(self, state: Mapping[str, Tensor]) -> None:
        names = self._state_names()
        if set(state) != set(names):
            raise KeyError(
                f"TemporalAggregation({self.mode!r}): state needs exactly {sorted(names)}, "
                f"got {sorted(state)}"
            )
        if names:
            self.accumulator = state["accumulator"]
        if "steps" in state:
            self.steps = state["steps"]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {super().extra_repr()}"
