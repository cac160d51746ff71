r"""LIF+ neuron math (paper Fig. 5): LIF extended by the neuron features of Flexon.

The paper's LIF+ follows Flexon (Lee et al., "Flexon: a flexible digital neuron for efficient spiking neural
network simulations", ISCA 2018), which builds a neuron from independent features; LIF+ groups them into five
stages, each a keyword of :func:`lifplus_step` with the modes of :data:`LIFPLUS_MODES` (the first is the
default, which is LIF's own behaviour). One step with synaptic input :math:`X_t` and the state of step
:math:`t-1` (membrane :math:`V`, conductance :math:`g`, alpha-synapse :math:`y`, inhibitory current
:math:`w`, relative-refractory conductance :math:`r`, refractory counter :math:`c`; all zero at the start):

**E, refractory** (``refractory``; Flexon's AR and RR):

.. math::

    \text{none}:&\quad \text{nothing} \\
    \text{absolute (AR)}:&\quad X_t \leftarrow X_t\,1[c_{t-1} = 0] \\
    \text{relative (RR)}:&\quad r_t = (1-\epsilon_r)\,r_{t-1};\quad \text{the membrane gets }
        r_t\,(v_{rr} - V_{t-1})

**B, input accumulation** (``accumulation``; Flexon's CUB, COBE, COBA and REV):

.. math::

    \text{cub}:&\quad I_t = X_t \\
    \text{cobe}:&\quad g_t = (1-\epsilon_g)\,g_{t-1} + X_t;\quad I_t = g_t \\
    \text{coba (alpha synapse)}:&\quad y_t = (1-\epsilon_g)\,y_{t-1} + X_t;\quad
        g_t = (1-\epsilon_g)\,g_{t-1} + e\,\epsilon_g\,y_t;\quad I_t = g_t \\
    \text{reversal (REV, cobe/coba only)}:&\quad I_t \leftarrow I_t\,(v_g - V_{t-1})

with :math:`e` Euler's number: after a unit input at step 0,
:math:`g_t = e\,\epsilon_g (t+1)(1-\epsilon_g)^t`, the discrete alpha kernel :math:`(t/\tau)\,e^{1 - t/\tau}`,
whose peak tends to 1 as :math:`\epsilon_g \to 0`.

**C, spike trigger** (``trigger``; Flexon's EXI and QDI), a term :math:`S_t`:

.. math::

    \text{threshold}:&\quad S_t = 0 \\
    \text{exi}:&\quad S_t = \tau^{-1}\,\Delta_T \exp\big((V_{t-1} - v_\theta) / \Delta_T\big) \\
    \text{qdi}:&\quad S_t = \tau^{-1}\,(V_{t-1} - v_{rest})(V_{t-1} - v_c)

In every mode the spike is :math:`F_t = 1[U_t > \theta]` (for EXI and QDI :math:`\theta` is the cut-off,
the peak voltage), through the surrogate ``spike_fn`` as in LIF. The EXI exponent is capped at
:data:`EXI_EXPONENT_CAP` so the term stays finite (``inf * 0`` in the hard reset would give NaN); a membrane
that reaches the cap is ``exp(50)`` times past the trigger and fires at any sane threshold.

**D, inhibitory / spike-triggered current** (``inhibition``; Flexon's ADT and SBT), a current :math:`w_t`
that the membrane loses:

.. math::

    \text{none}:&\quad w_t = 0 \\
    \text{adt (adaptation)}:&\quad w_t = (1-\epsilon_w)\,w_{t-1} \\
    \text{sbt (subthreshold coupling, AdEx's w)}:&\quad
        w_t = (1-\epsilon_w)\,w_{t-1} + \tau^{-1} a\,(V_{t-1} - v_w)

**Integrate, fire, reset** (as LIF, :mod:`bidl.functional.lif`):

.. math::

    U_t &= V_{t-1} + I_t + S_t - w_t\ [+\ r_t (v_{rr} - V_{t-1})] \\
    U_t &\leftarrow \mathrm{BN}(U_t),\ \text{training noise}  && \text{optional, as LIF} \\
    F_t &= 1[U_t > \theta] \\
    R_t &= F_t v_{reset} + (1 - F_t) U_t \ \text{(hard)} \ |\ U_t - F_t\theta \ \text{(soft)}

**A, decay** (``decay``; Flexon's EXD and LID; "linear" is LIF's leak):

.. math::

    \text{linear}:&\quad V_t = \alpha R_t + \beta \\
    \text{exponential (EXD)}:&\quad V_t = R_t - \tau^{-1}(R_t - v_{rest}) \\
    \text{lid (linear decay toward rest, never past it)}:&\quad d = R_t - v_{rest};\quad
        V_t = v_{rest} + \mathrm{sign}(d)\,\mathrm{relu}(|d| - v_{leak})

**After firing** (the spike-triggered parts of D and E):

.. math::

    w_t \mathrel{+}= b\,F_t \ \text{(adt, sbt)};\quad r_t \mathrel{+}= q_r F_t \ \text{(relative)};\quad
    c_t = n_{ref} \text{ if } F_t \text{ else } \max(c_{t-1} - 1, 0) \ \text{(absolute)}

The output is :math:`Y_t = F_t`: spikes only (an analog LIF+ output, as LIAF has, is out of scope). With
every stage at its default LIF+ runs exactly the operations of :func:`~bidl.functional.lif.lif_step` (same
values, same gradients), and :func:`lifplus_multi_step` then runs :func:`~bidl.functional.lif.lif_multi_step`,
whose fused kernels apply to it. The constants beyond LIF's four parameters are fixed scalars, named in
:data:`LIFPLUS_CONSTANTS`; the counter :math:`c` carries no gradient.

The state is a dict holding ``"v"`` and only the variables the chosen modes need (:func:`lifplus_state_keys`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .lif import (
    RESET_MODES,
    Norm,
    ParamLike,
    active_builtins,
    add_training_noise,
    fire,
    integrate,
    leak,
    lif_multi_step,
    reset_membrane,
)
from .surrogate import rectangle

_LIF_STEP_KEYWORDS = ("alpha", "beta", "theta", "v_reset", "reset", "spike_fn", "norm", "noise")
"""The keywords LIF+ shares with :func:`~bidl.functional.lif.lif_step`: all an all-default LIF+ needs."""

__all__ = [
    "LIFPLUS_MODES",
    "LIFPLUS_CONSTANTS",
    "LIFPLUS_DEFAULT_MODES",
    "EXI_EXPONENT_CAP",
    "check_lifplus_modes",
    "lifplus_constants",
    "lifplus_state_keys",
    "init_lifplus_state",
    "lifplus_step",
    "lifplus_multi_step",
]

LIFPLUS_MODES: dict[str, tuple[str, ...]] = {
    "decay": ("linear", "exponential", "lid"),  # A: LIF's leak | EXD | LID
    "accumulation": ("cub", "cobe", "coba"),  # B: current | conductance, exponential | alpha synapse
    "trigger": ("threshold", "exi", "qdi"),  # C: plain threshold | exponential | quadratic
    "inhibition": ("none", "adt", "sbt"),  # D: none | adaptation | subthreshold coupling (+ spike-triggered)
    "refractory": ("none", "absolute", "relative"),  # E: none | AR | RR
}
"""The five LIF+ stages and their modes, the default (LIF's behaviour) first. ``reversal`` (Flexon's REV) is
a separate boolean that applies to the conductance modes of ``accumulation``."""

LIFPLUS_CONSTANTS: dict[str, float | int] = {
    "tau_recip": 0.2,  # 1/tau: rate of EXD's decay and gain of the EXI, QDI and SBT terms
    "v_rest": 0.0,  # resting potential: EXD and LID decay toward it; QDI's lower fixed point
    "eps_g": 0.5,  # conductance decay per step (COBE, COBA's g and y)
    "v_g": 1.0,  # reversal potential of the conductance (REV)
    "delta_t": 0.1,  # EXI's slope factor Delta_T
    "v_theta": 0.4,  # EXI's soft threshold (rheobase) v_theta
    "v_c": 0.4,  # QDI's critical voltage: above it the quadratic term drives the membrane up
    "eps_w": 0.2,  # decay per step of the inhibitory current w (ADT, SBT)
    "b": 0.2,  # spike-triggered jump of w (ADT, SBT)
    "a": 0.1,  # SBT's subthreshold coupling of w to the membrane
    "v_w": 0.0,  # SBT's coupling reference voltage
    "eps_r": 0.5,  # decay per step of the relative-refractory conductance r (RR)
    "q_r": 0.5,  # spike-triggered jump of r (RR)
    "v_rr": -1.0,  # RR's reversal potential: r pulls the membrane toward it
    "n_ref": 2,  # AR's refractory period in steps (an int >= 1)
    "v_leak": 0.1,  # LID's constant decay per step
}
"""The fixed LIF+ constants (deterministic defaults); each is overridable by its keyword."""

EXI_EXPONENT_CAP = 50.0
"""Upper bound of EXI's exponent ``(V - v_theta) / delta_t``: keeps ``exp`` finite in float32."""

LIFPLUS_DEFAULT_MODES: dict[str, str | bool] = {
    **{stage: modes[0] for stage, modes in LIFPLUS_MODES.items()},
    "reversal": False,
}
"""Every stage at its default (and no reversal): the LIF+ that computes exactly what LIF computes."""


def check_lifplus_modes(
    *,
    decay: str = "linear",
    accumulation: str = "cub",
    reversal: bool = False,
    trigger: str = "threshold",
    inhibition: str = "none",
    refractory: str = "none",
) -> dict[str, str | bool]:
    """The stage modes as a dict; ``ValueError`` naming the keyword and its choices for an unknown mode, and
    for ``reversal=True`` with ``accumulation="cub"`` (REV scales a conductance)."""
    modes = dict(
        decay=decay, accumulation=accumulation, trigger=trigger, inhibition=inhibition, refractory=refractory
    )
    for stage, mode in modes.items():
        if mode not in LIFPLUS_MODES[stage]:
            raise ValueError(f"{stage}: unknown mode {mode!r}; choose one of {LIFPLUS_MODES[stage]}")
    if not isinstance(reversal, bool):
        raise ValueError(f"reversal: expected True or False, got {reversal!r}")
    if reversal and accumulation == "cub":
        raise ValueError("reversal: needs a conductance input, accumulation='cobe' or 'coba' (got 'cub')")
    return {**modes, "reversal": reversal}


def lifplus_constants(**overrides: float) -> dict[str, float | int]:
    """:data:`LIFPLUS_CONSTANTS` with ``overrides``; ``TypeError`` naming an unknown constant, ``ValueError``
    for ``n_ref`` that is not an int >= 1 or a non-positive ``delta_t``."""
    unknown = sorted(set(overrides) - set(LIFPLUS_CONSTANTS))
    if unknown:
        choices = tuple(LIFPLUS_CONSTANTS)
        raise TypeError(f"{', '.join(unknown)}: unknown LIF+ constant; choose from {choices}")
    constants: dict[str, float | int] = {**LIFPLUS_CONSTANTS, **overrides}
    n_ref = constants["n_ref"]
    if isinstance(n_ref, bool) or not isinstance(n_ref, int) or n_ref < 1:
        raise ValueError(f"n_ref: the refractory period must be an int >= 1, got {n_ref!r}")
    for name, value in constants.items():
        if name != "n_ref":
            constants[name] = float(value)
    if constants["delta_t"] <= 0:
        raise ValueError(f"delta_t: EXI's slope factor must be > 0, got {constants['delta_t']}")
    return constants


def lifplus_state_keys(
    *, accumulation: str = "cub", inhibition: str = "none", refractory: str = "none", **_: object
) -> tuple[str, ...]:
    """The state variables these modes need: ``"v"`` plus ``"g"`` (cobe, coba), ``"y"`` (coba), ``"w"``
    (adt, sbt), ``"r"`` (relative), ``"c"`` (absolute). Other keywords (the remaining stages) are ignored."""
    keys = ["v"]
    if accumulation in ("cobe", "coba"):
        keys.append("g")
    if accumulation == "coba":
        keys.append("y")
    if inhibition in ("adt", "sbt"):
        keys.append("w")
    if refractory == "relative":
        keys.append("r")
    if refractory == "absolute":
        keys.append("c")
    return tuple(keys)


def init_lifplus_state(like: Tensor, **modes: object) -> dict[str, Tensor]:
    """The zero state (every variable zero, as at the start and after an EIM reset) shaped like ``like``."""
    return {key: torch.zeros_like(like) for key in lifplus_state_keys(**modes)}


def lifplus_step(
    x: Tensor,
    state: Mapping[str, Tensor] | None,
    *,
    decay: str = "linear",
    accumulation: str = "cub",
    reversal: bool = False,
    trigger: str = "threshold",
    inhibition: str = "none",
    refractory: str = "none",
    alpha: ParamLike = 0.3,
    beta: ParamLike = 0.0,
    theta: ParamLike = 0.5,
    v_reset: ParamLike = 0.0,
    reset: str = "hard",
    spike_fn: Callable[[Tensor], Tensor] = rectangle,
    norm: Norm | None = None,
    noise: float = 0.0,
    **constants: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One LIF+ step (the equations of the module docstring).

    Args:
        x: synaptic input ``X_t``, ``[B, ...]``.
        state: the state of step ``t-1``, a dict with the keys of :func:`lifplus_state_keys` (``None`` or
            missing keys: zeros).
        decay, accumulation, reversal, trigger, inhibition, refractory: the stage modes
            (:data:`LIFPLUS_MODES`).
        alpha, beta, theta, v_reset, reset, spike_fn, norm, noise: as :func:`~bidl.functional.lif.lif_step`
            (``alpha``, ``beta`` act only with ``decay="linear"``).
        **constants: overrides of :data:`LIFPLUS_CONSTANTS`.

    Returns:
        ``(spikes, new_state)``; ``new_state`` is a new dict, ``state`` is left as it was.
    """
    modes = check_lifplus_modes(
        decay=decay,
        accumulation=accumulation,
        reversal=reversal,
        trigger=trigger,
        inhibition=inhibition,
        refractory=refractory,
    )
    if reset not in RESET_MODES:
        raise ValueError(f"reset: unknown mode {reset!r}; choose one of {RESET_MODES}")
    k = lifplus_constants(**constants)
    state = dict(state or {})
    for key in lifplus_state_keys(**modes):
        if key not in state:
            state[key] = torch.zeros_like(x)
    v = state["v"]
    new: dict[str, Tensor] = {}

    # E (AR): the input is blocked while the refractory counter runs
    if refractory == "absolute":
        x = x * (state["c"] == 0).to(x.dtype)

    # B: input accumulation (CUB, COBE, COBA; REV)
    if accumulation == "cub":
        current = x
    elif accumulation == "cobe":
        current = new["g"] = (1.0 - k["eps_g"]) * state["g"] + x
    else:  # coba: alpha synapse
        new["y"] = (1.0 - k["eps_g"]) * state["y"] + x
        current = new["g"] = (1.0 - k["eps_g"]) * state["g"] + math.e * k["eps_g"] * new["y"]
    if reversal:
        current = current * (k["v_g"] - v)

    u = integrate(current, v)

    # C: spike-trigger term (EXI, QDI)
    if trigger == "exi":
        exponent = ((v - k["v_theta"]) / k["delta_t"]).clamp(max=EXI_EXPONENT_CAP)
        u = u + k["tau_recip"] * k["delta_t"] * torch.exp(exponent)
    elif trigger == "qdi":
        u = u + k["tau_recip"] * (v - k["v_rest"]) * (v - k["v_c"])

    # D: inhibitory current (ADT, SBT), before this step's spike-triggered jump
    if inhibition != "none":
        w = (1.0 - k["eps_w"]) * state["w"]
        if inhibition == "sbt":
            w = w + k["tau_recip"] * k["a"] * (v - k["v_w"])
        u = u - w

    # E (RR): relative-refractory conductance pulling toward v_rr
    if refractory == "relative":
        r = (1.0 - k["eps_r"]) * state["r"]
        u = u + r * (k["v_rr"] - v)

    # fire and reset, as LIF
    if norm is not None:
        u = norm(u)
    u = add_training_noise(u, noise)
    ops = active_builtins()
    spike = fire(u, theta, spike_fn) if ops is None else ops.cmp_and_fire(u, theta)
    r_mem = reset_membrane(u, spike, v_reset=v_reset, theta=theta, reset=reset)

    # A: decay
    if decay == "linear":
        new["v"] = leak(r_mem, alpha, beta)
    elif decay == "exponential":
        new["v"] = r_mem - k["tau_recip"] * (r_mem - k["v_rest"])
    else:  # lid
        d = r_mem - k["v_rest"]
        new["v"] = k["v_rest"] + torch.sign(d) * torch.relu(d.abs() - k["v_leak"])

    # after firing: spike-triggered jumps and the refractory counter
    if inhibition != "none":
        new["w"] = w + k["b"] * spike
    if refractory == "relative":
        new["r"] = r + k["q_r"] * spike
    elif refractory == "absolute":
        fired = spike.detach() > 0
        countdown = (state["c"] - 1.0).clamp(min=0.0)
        new["c"] = torch.where(fired, torch.full_like(v, float(k["n_ref"])), countdown)
    return spike, new


def lifplus_multi_step(
    x_seq: Tensor, state0: Mapping[str, Tensor] | None = None, **step_kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """Multi-step LIF+ over a time-first sequence: :func:`lifplus_step` in a loop (the specification); with
    every stage at its default, :func:`~bidl.functional.lif.lif_multi_step` (the same computation, on the
    fused kernels where they apply).

    Args:
        x_seq: ``[T, B, ...]`` synaptic inputs.
        state0: initial state dict; zeros when ``None``.
        **step_kwargs: the keyword arguments of :func:`lifplus_step`.

    Returns:
        ``(y_seq [T, B, ...], state_T)``.

    Example:
        >>> y, s = lifplus_multi_step(torch.full((3, 1, 1), 1.5), theta=1.0, refractory="absolute", n_ref=1)
        >>> y.flatten().tolist(), sorted(s)
        ([1.0, 0.0, 1.0], ['c', 'v'])
    """
    modes = {stage: step_kwargs.get(stage, default) for stage, default in LIFPLUS_DEFAULT_MODES.items()}
    if modes == LIFPLUS_DEFAULT_MODES:  # LIF's own computation: the fused kernels where they apply
        lif_kwargs = {key: value for key, value in step_kwargs.items() if key in _LIF_STEP_KEYWORDS}
        unknown = set(step_kwargs) - set(lif_kwargs) - set(modes) - set(LIFPLUS_CONSTANTS)
        if unknown:
            raise TypeError(f"lifplus_multi_step: unknown keyword argument(s) {sorted(unknown)}")
        lifplus_constants(**{key: step_kwargs[key] for key in step_kwargs if key in LIFPLUS_CONSTANTS})
        if lif_kwargs.get("reset", "hard") not in RESET_MODES:
            raise ValueError(f"reset: unknown mode {lif_kwargs['reset']!r}; choose one of {RESET_MODES}")
        y_seq, v_last = lif_multi_step(x_seq, None if state0 is None else state0["v"], **lif_kwargs)
        return y_seq, {"v": v_last}
    state = init_lifplus_state(x_seq[0], **step_kwargs) if state0 is None else dict(state0)
    outputs = []
    for x in x_seq:
        y, state = lifplus_step(x, state, **step_kwargs)
        outputs.append(y)
    return torch.stack(outputs), state
