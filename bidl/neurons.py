r"""LIF and LIAF neuron modules (paper eqs. 6-11) and the LIF+ neuron (paper Fig. 5), in both iteration modes.

The math lives in :mod:`bidl.functional`; these modules hold the parameters and the EIM state.

Shapes: in IIM ``x: [B, T, ...] -> [B, T, ...]``; in EIM ``x: [B, ...] -> [B, ...]`` per call. With
``sharing="channel"`` the channel axis is the one right after B (and T in IIM).

Example:
    >>> import torch
    >>> from bidl import LIF
    >>> lif = LIF(alpha=0.3, theta=0.5)
    >>> lif(torch.ones(2, 4, 3)).shape
    torch.Size([2, 4, 3])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .functional import (
    ACTIVATIONS,
    LIAF_MODES,
    LIAF_READOUTS,
    LIFPLUS_CONSTANTS,
    RESET_MODES,
    check_lifplus_modes,
    get_surrogate,
    init_lifplus_state,
    lif_multi_step,
    lif_step,
    lifplus_constants,
    lifplus_multi_step,
    lifplus_state_keys,
    lifplus_step,
)
from .state import SpatioTemporalModule, StatefulModule

__all__ = ["LIF", "LIAF", "LIFPlus", "ReLUNeuron", "SHARING_MODES", "ACTIVATIONS"]

SHARING_MODES = ("all", "channel")
_PARAM_NAMES = ("alpha", "beta", "theta", "v_reset")


class LIF(StatefulModule):
    r"""Leaky integrate-and-fire neuron.

    .. math::
        U_t = X_t + V_{t-1};\quad F_t = 1[U_t > \theta];\quad
        V_t = \alpha\,(F_t v_{reset} + (1-F_t) U_t) + \beta \ \text{(hard)}\ |\
        \alpha (U_t - F_t\theta) + \beta \ \text{(soft)};\quad Y_t = F_t

    Args:
        alpha: leak factor applied after the reset (authors' default 0.3).
        beta: constant leak term (0).
        theta: firing threshold (0.5).
        v_reset: reset potential for the hard reset (0).
        reset: ``"hard"`` or ``"soft"`` (RMP: subtract theta).
        sharing: ``"all"`` (ASM: one scalar per layer) or ``"channel"`` (CSM: one value per channel,
            stored with shape ``[C]`` and broadcast over the channel axis).
        channels: the number of channels, required for channel sharing.
        learnable: learn alpha, beta, theta and v_reset by BPTT (the paper; the authors' code: fixed); a
            learned alpha is clamped to [0, 1] in the forward pass.
        noise: training-noise scale (authors: 1e-3 typical; 0 disables); active only in ``train()``.
        surrogate: ``"rectangle"`` (default), ``"sigmoid"`` or ``"arctan"``; ``surrogate_scale`` its width/k.
        norm: optional module applied to the membrane each step (BatchNorm on the state, "norm_state").
        iteration: ``"internal"`` (IIM) or ``"external"`` (EIM).
    """

    analog = False
    state_attributes = ("v",)

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        beta: float = 0.0,
        theta: float = 0.5,
        v_reset: float = 0.0,
        reset: str = "hard",
        sharing: str = "all",
        channels: int | None = None,
        learnable: bool = False,
        noise: float = 0.0,
        surrogate: str = "rectangle",
        surrogate_scale: float | None = None,
        norm: nn.Module | None = None,
        iteration: str = "internal",
    ):
        super().__init__(iteration)
        if reset not in RESET_MODES:
            raise ValueError(f"reset: unknown mode {reset!r}; choose one of {RESET_MODES}")
        if sharing not in SHARING_MODES:
            raise ValueError(f"sharing: unknown mode {sharing!r}; choose one of {SHARING_MODES}")
        if sharing == "channel" and not channels:
            raise ValueError("channels: channel sharing needs the number of channels")
        self.reset = reset
        self.sharing = sharing
        self.channels = channels if sharing == "channel" else None
        self.learnable = learnable
        self.noise = float(noise)
        self.surrogate = surrogate
        self.surrogate_scale = surrogate_scale
        self.spike_fn = get_surrogate(surrogate, surrogate_scale)
        self.norm = norm
        shape = (channels,) if sharing == "channel" else ()
        for name, value in zip(_PARAM_NAMES, (alpha, beta, theta, v_reset), strict=True):
            tensor = torch.full(shape, float(value))
            if learnable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.v: Tensor | None = None

    # -- parameters -----------------------------------------------------------------------------------
    def neuron_parameters(self, ndim: int) -> dict[str, Tensor]:
        """alpha, beta, theta, v_reset shaped to broadcast against a ``[B, C, ...]`` state of ``ndim`` dims"""
        params = {name: getattr(self, name) for name in _PARAM_NAMES}
        if self.learnable:  # a learned leak factor must stay a leak: alpha in [0, 1]
            params["alpha"] = params["alpha"].clamp(0.0, 1.0)
        if self.sharing == "channel":
            view = (1, self.channels) + (1,) * (ndim - 2)
            params = {name: p.view(view) for name, p in params.items()}
        return params

    def _step_kwargs(self, ndim: int) -> dict:
        return dict(
            **self.neuron_parameters(ndim),
            reset=self.reset,
            spike_fn=self.spike_fn,
            norm=self.norm,
            noise=self.noise if self.training else 0.0,
            **self._neuron_kwargs(),
        )

    def _neuron_kwargs(self) -> dict:
        """The step function's keywords beyond the LIF parameters (LIAF's readout, LIF+'s stages)."""
        return dict(analog=self.analog, **self._analog_kwargs())

    def _analog_kwargs(self) -> dict:
        return {}

    # -- forward --------------------------------------------------------------------------------------
    def _multi_step(self, x_seq: Tensor) -> Tensor:
        """IIM: outputs ``[T, B, ...]`` of a time-first input sequence, from the zero state."""
        return lif_multi_step(x_seq, None, **self._step_kwargs(x_seq.dim() - 1))[0]

    def _init_state(self, x: Tensor) -> None:
        """EIM: the zero state for inputs shaped like ``x``."""
        self.v = torch.zeros_like(x)

    def _step(self, x: Tensor) -> Tensor:
        """EIM: one step from the held state, which it updates."""
        y, self.v = lif_step(x, self.v, **self._step_kwargs(x.dim()))
        return y

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "internal":
            if x.dim() < 2:
                raise ValueError(
                    f"{type(self).__name__} in IIM expects [B, T, ...], got shape {tuple(x.shape)}"
                )
            return self._multi_step(x.transpose(0, 1)).transpose(0, 1)
        if self.v is None or self.v.shape != x.shape:
            if self.v is not None:
                raise RuntimeError(
                    f"{type(self).__name__}: input shape {tuple(x.shape)} differs from the held state "
                    f"{tuple(self.v.shape)}; call bidl.reset_states(network) before a new batch"
                )
            self._init_state(x)
        return self._step(x)

    def reset_state(self) -> None:
        """Forget the EIM membrane; the next step starts from zero."""
        self.v = None

    def extra_repr(self) -> str:
        return (
            f"reset={self.reset!r}, sharing={self.sharing!r}, channels={self.channels}, "
            f"learnable={self.learnable}, noise={self.noise}, surrogate={self.surrogate!r}, "
            f"{super().extra_repr()}"
        )


class LIAF(LIF):
    r"""Leaky integrate-and-analog-fire neuron: LIF dynamics, analog output.

    .. math:: Y_t = g(U_t)\ \text{(NTR)}\quad|\quad g(U_t - \theta)\ \text{(TR)}

    with ``liaf_readout="pre_reset"`` (the default: the membrane after integration, before reset and leak,
    as the authors' ``Lif`` reads it with ``memb_mode=(0, relu)``, as LIAF-Net and SpikingJelly's
    ``LIAFNode`` do), or :math:`g(V_t)` / :math:`g(V_t - \theta)` with ``liaf_readout="post_leak"`` (the
    paper's eq. 11 taken literally: the state after reset and leak, a named variant).

    Args:
        activation: ``"relu"`` (default), ``"sigmoid"``, ``"tanh"`` or ``"identity"``.
        liaf_mode: ``"NTR"`` (default) or ``"TR"``.
        liaf_readout: ``"pre_reset"`` (default) or ``"post_leak"``.
        **kwargs: as :class:`LIF`.
    """

    analog = True

    def __init__(
        self,
        *,
        activation: str = "relu",
        liaf_mode: str = "NTR",
        liaf_readout: str = "pre_reset",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {activation!r}; choose one of {tuple(ACTIVATIONS)}")
        if liaf_mode not in LIAF_MODES:
            raise ValueError(f"liaf_mode: unknown {liaf_mode!r}; choose one of {LIAF_MODES}")
        if liaf_readout not in LIAF_READOUTS:
            raise ValueError(f"liaf_readout: unknown {liaf_readout!r}; choose one of {LIAF_READOUTS}")
        self.activation = activation
        self.liaf_mode = liaf_mode
        self.liaf_readout = liaf_readout

    def _analog_kwargs(self) -> dict:
        return dict(
            activation=ACTIVATIONS[self.activation], liaf_mode=self.liaf_mode, liaf_readout=self.liaf_readout
        )

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation!r}, liaf_mode={self.liaf_mode!r}, "
            f"liaf_readout={self.liaf_readout!r}, {super().extra_repr()}"
        )


_LIF_KEYWORDS = tuple(name for name in inspect.signature(LIF.__init__).parameters if name != "self")


class LIFPlus(LIF):
    r"""LIF+ (paper Fig. 5): LIF with the five configurable stages of Flexon (Lee et al., ISCA 2018).

    One step, with the stage terms that the modes switch on (:mod:`bidl.functional.lifplus` has every
    equation and its Flexon feature name):

    .. math::
        X_t &\leftarrow X_t\,1[c_{t-1} = 0] \ \text{(AR)};\quad
        I_t = X_t \ \text{(CUB)}\ |\ g_t \ \text{(COBE, COBA)},\ \times (v_g - V_{t-1}) \ \text{(REV)} \\
        U_t &= V_{t-1} + I_t + S_t - w_t + r_t (v_{rr} - V_{t-1});\quad F_t = 1[U_t > \theta];\quad
        R_t = \text{reset}(U_t, F_t) \ \text{as LIF} \\
        V_t &= \alpha R_t + \beta \ \text{(linear)}\ |\ R_t - \tau^{-1}(R_t - v_{rest}) \ \text{(EXD)}\ |\
        v_{rest} + \mathrm{sign}(d)\,\mathrm{relu}(|d| - v_{leak}),\ d = R_t - v_{rest} \ \text{(LID)};
        \quad Y_t = F_t

    with :math:`S_t` the spike-trigger term (EXI, QDI), :math:`w_t` the inhibitory current (ADT, SBT; it
    jumps by :math:`b F_t` after firing), :math:`r_t` the relative-refractory conductance (RR; jumps by
    :math:`q_r F_t`) and :math:`c_t` the absolute-refractory counter (AR; :math:`n_{ref}` after a spike). With
    every stage at its default this is exactly :class:`LIF`. The output is spikes only (an analog LIF+ output
    is out of scope).

    Args:
        decay: ``"linear"`` (LIF's leak, the default), ``"exponential"`` (EXD) or ``"lid"`` (LID).
        accumulation: ``"cub"`` (current input, the default), ``"cobe"`` (exponential conductance) or
            ``"coba"`` (alpha-synapse conductance).
        reversal: scale the conductance by the driving force ``v_g - V`` (REV; only with cobe / coba).
        trigger: ``"threshold"`` (the default), ``"exi"`` (exponential) or ``"qdi"`` (quadratic).
        inhibition: ``"none"`` (the default), ``"adt"`` (adaptation) or ``"sbt"`` (subthreshold coupling).
        refractory: ``"none"`` (the default), ``"absolute"`` (AR) or ``"relative"`` (RR).
        **kwargs: the keywords of :class:`LIF` (alpha, beta, theta, v_reset, reset, sharing, channels,
            learnable, noise, surrogate, norm, iteration; alpha and beta act only with ``decay="linear"``) and
            overrides of the fixed constants :data:`~bidl.functional.LIFPLUS_CONSTANTS` (``tau_recip``,
            ``v_rest``, ``eps_g``, ...). The constants are plain numbers, not buffers: a LIF+ network has the
            same ``state_dict`` as its LIF counterpart.

    In EIM the state is a dict (``self.state``: ``"v"`` and the variables the modes need); ``self.v`` is its
    membrane.

    Example:
        >>> import torch
        >>> lifplus = LIFPlus(inhibition="adt", theta=1.0, b=0.5)
        >>> lifplus(torch.full((1, 4, 1), 1.25)).flatten().tolist()
        [1.0, 0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        *,
        decay: str = "linear",
        accumulation: str = "cub",
        reversal: bool = False,
        trigger: str = "threshold",
        inhibition: str = "none",
        refractory: str = "none",
        **kwargs,
    ):
        constants = {name: kwargs.pop(name) for name in list(kwargs) if name in LIFPLUS_CONSTANTS}
        unknown = sorted(set(kwargs) - set(_LIF_KEYWORDS))
        if unknown:
            raise TypeError(
                f"{', '.join(unknown)}: unknown LIFPlus keyword; choose from the LIF keywords "
                f"{_LIF_KEYWORDS} and the LIF+ constants {tuple(LIFPLUS_CONSTANTS)}"
            )
        super().__init__(**kwargs)
        self.modes = check_lifplus_modes(
            decay=decay,
            accumulation=accumulation,
            reversal=reversal,
            trigger=trigger,
            inhibition=inhibition,
            refractory=refractory,
        )
        self.constants = lifplus_constants(**constants)
        self.state: dict[str, Tensor] | None = None

    def _neuron_kwargs(self) -> dict:
        return {**self.modes, **self.constants}

    def _multi_step(self, x_seq: Tensor) -> Tensor:
        return lifplus_multi_step(x_seq, None, **self._step_kwargs(x_seq.dim() - 1))[0]

    def _init_state(self, x: Tensor) -> None:
        self.state = init_lifplus_state(x, **self.modes)
        self.v = self.state["v"]

    def _step(self, x: Tensor) -> Tensor:
        y, self.state = lifplus_step(x, self.state, **self._step_kwargs(x.dim()))
        self.v = self.state["v"]  # the membrane, as LIF holds it (the held shape, the plasticity's membrane)
        return y

    def reset_state(self) -> None:
        """Forget the EIM state (membrane, conductances, currents, counter); the next step starts at 0."""
        self.state = None
        self.v = None

    def get_state(self) -> dict[str, Tensor]:
        """The membrane ``v`` and what the modes need (:func:`~bidl.functional.lifplus_state_keys`)."""
        return dict(self.state) if self.state is not None else {}

    def set_state(self, state: Mapping[str, Tensor]) -> None:
        keys = set(lifplus_state_keys(**self.modes))
        if set(state) != keys:
            raise KeyError(f"LIFPlus: state needs exactly {sorted(keys)}, got {sorted(state)}")
        self.state = dict(state)
        self.v = self.state["v"]

    def extra_repr(self) -> str:
        modes = ", ".join(f"{stage}={mode!r}" for stage, mode in self.modes.items())
        changed = {k: v for k, v in self.constants.items() if v != LIFPLUS_CONSTANTS[k]}
        constants = "".join(f", {k}={v}" for k, v in changed.items())
        return f"{modes}{constants}, {super().extra_repr()}"


class ReLUNeuron(SpatioTemporalModule):
    r"""The non-spiking twin of a neuron: a ReLU where the neuron was, with no state and no parameters.

    .. math::
        Y_t = \max(0, N(X_t))

    ``N`` is the neuron's BatchNorm on the membrane (``norm``: applied to each step's input, with each step's
    batch statistics in training, as the neuron applies it to its membrane) or the identity. Without the
    membrane there is no memory: each step's output depends on that step's input alone, so a network of
    these units sees a sequence as a bag of frames until its temporal aggregation.
    :func:`bidl.models.twins.non_spiking_twin` puts one in place of every neuron of a network.

    Example:
        >>> import torch
        >>> ReLUNeuron()(torch.tensor([[[-1.0, 2.0], [0.5, -0.5]]]))
        tensor([[[0.0000, 2.0000],
                 [0.5000, 0.0000]]])
    """

    def __init__(self, *, norm: nn.Module | None = None, iteration: str = "internal"):
        super().__init__(iteration)
        self.norm = norm

    def _one_step(self, x: Tensor) -> Tensor:
        return torch.relu(self.norm(x) if self.norm is not None else x)

    def forward(self, x: Tensor) -> Tensor:
        if self.iteration == "external" or self.norm is None:
            return self._one_step(x)
        if x.dim() < 2:
            raise ValueError(f"ReLUNeuron in IIM expects [B, T, ...], got shape {tuple(x.shape)}")
        return torch.stack([self._one_step(x[:, t]) for t in range(x.shape[1])], dim=1)
