r"""Local learning: synaptic plasticity rules attached to a synapse, streamed per timestep in EIM.

The paper's generalized local-learning module (section 3.1.2, Fig. 6): it receives the spikes of the
presynaptic population (the synapse's input), the spikes and optionally the membranes of the postsynaptic
population (the neuron's output), a reward, and the current weights with the spike traces, and a rule SP
returns the weight change :math:`\Delta W`. The weights are then updated in place,
:math:`W \leftarrow W + \Delta W` (a rule includes its own learning rate).

Traces (paper eq. 13), updated with the current step's spikes before the rule is called:

.. math:: x_t = \Theta\, x_{t-1} + \eta\, s_t \qquad (\Theta = 0.95,\ \eta = 1 \text{ in the paper})

Every rule works on the synapse in its *linear form*: ``pre`` ``[N, I]`` and ``post`` ``[N, O]`` with the
weight ``[O, I]``; ``N`` runs over the batch (and, for a convolution, over every output position, with the
input unfolded into patches, so that the same rule learns a kernel). A rule sums over ``N``.

- :func:`hebb`: :math:`\Delta W = \lambda\, s_{post}^\top s_{pre}`.
- :func:`stdp`: :math:`\Delta W = \lambda_+\, s_{post}^\top x_{pre} - \lambda_-\, x_{post}^\top s_{pre}`
  (pre before post potentiates, post before pre depresses).
- :func:`rstdp` (paper eq. 12): STDP with every postsynaptic neuron's term scaled by its reward,
  :math:`\Delta W_{oi} = \sum_n r_{no} (\lambda_+ s^{post}_{no} x^{pre}_{ni} - \lambda_- x^{post}_{no}
  s^{pre}_{ni})`; with :func:`population_reward` :math:`r = L_c - \bar O_c` (the label of the neuron's class
  minus the mean spike of the class's population at this step).
- a user-defined rule: any callable with the keyword signature of :class:`PlasticityRule`.

:class:`Plasticity` attaches a rule to an ST block (:class:`~bidl.layers.STBlock`: a linear or a
convolutional synapse and its neuron): in EIM, every step the block runs, the traces are updated and the
rule's :math:`\Delta W` is added to the synapse's weight, without autograd. In IIM (BPTT) the module is
detached: it does nothing, and the weights are left to the optimizer. Global and local learning thus
interleave on one network: a BPTT step in IIM, then local updates streamed in EIM
(:func:`bidl.colearning.interleaved_epoch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .state import StatefulModule

__all__ = [
    "PlasticityRule",
    "hebb",
    "stdp",
    "rstdp",
    "RULES",
    "make_rule",
    "update_trace",
    "population_reward",
    "population_decode",
    "Plasticity",
    "attach_plasticity",
    "detach_plasticity",
]


class PlasticityRule(Protocol):
    """The signature of a plasticity rule: linear-form activity in, ``dW`` ``[O, I]`` out.

    Args:
        pre: presynaptic spikes ``[N, I]`` at this step.
        post: postsynaptic spikes ``[N, O]`` at this step.
        pre_trace: presynaptic traces ``[N, I]`` (including this step's spikes).
        post_trace: postsynaptic traces ``[N, O]`` (including this step's spikes).
        weight: the current weight ``[O, I]`` (read only).
        reward: ``None``, a scalar, or a per-neuron reward ``[N, O]``.
        membrane: the postsynaptic membrane ``[N, O]`` after this step, or ``None``.
    """

    def __call__(
        self,
        *,
        pre: Tensor,
        post: Tensor,
        pre_trace: Tensor,
        post_trace: Tensor,
        weight: Tensor,
        reward: Tensor | None,
        membrane: Tensor | None,
    ) -> Tensor: ...


def hebb(lr: float = 1e-3) -> PlasticityRule:
    r"""Hebb's rule :math:`\Delta W = \lambda\, s_{post}^\top s_{pre}` (coincident spikes potentiate)."""

    def rule(*, pre: Tensor, post: Tensor, **_) -> Tensor:
        return lr * post.t() @ pre

    return rule


def stdp(lr_plus: float = 1e-3, lr_minus: float = 1e-3) -> PlasticityRule:
    r"""Pair-based STDP with traces: :math:`\Delta W = \lambda_+ s_{post}^\top x_{pre} - \lambda_-
    x_{post}^\top s_{pre}`. A presynaptic spike followed by a postsynaptic one potentiates, the reverse order
    depresses; spikes at the same step do both (the traces include the current spikes)."""

    def rule(*, pre: Tensor, post: Tensor, pre_trace: Tensor, post_trace: Tensor, **_) -> Tensor:
        return lr_plus * post.t() @ pre_trace - lr_minus * post_trace.t() @ pre

    return rule


def rstdp(lr_plus: float = 1e-3, lr_minus: float = 1e-3) -> PlasticityRule:
    r"""Reward-modulated STDP (paper eq. 12, with ``w += lr * dW``): each postsynaptic neuron's STDP term is
    scaled by its reward, :math:`\Delta W_{oi} = \sum_n r_{no} (\lambda_+ s^{post}_{no} x^{pre}_{ni} -
    \lambda_- x^{post}_{no} s^{pre}_{ni})`. The paper uses one rate, ``lr = 1e-3`` for both terms; the
    authors' code uses ``lr_plus = 1e-3`` and ``lr_minus = 1e-4``. A missing reward raises ``ValueError``."""

    def rule(
        *, pre: Tensor, post: Tensor, pre_trace: Tensor, post_trace: Tensor, reward: Tensor | None, **_
    ) -> Tensor:
        if reward is None:
            raise ValueError("reward: R-STDP needs a reward (set Plasticity.reward before the step)")
        reward = torch.as_tensor(reward, dtype=post.dtype, device=post.device)
        return lr_plus * (reward * post).t() @ pre_trace - lr_minus * (reward * post_trace).t() @ pre

    return rule


RULES: dict[str, Callable[..., PlasticityRule]] = {"hebb": hebb, "stdp": stdp, "rstdp": rstdp}
"""The built-in rules by name, each a factory taking its learning rates."""


def make_rule(name: str, **kwargs) -> PlasticityRule:
    """A built-in rule by name (``"hebb"``, ``"stdp"``, ``"rstdp"``) with its keyword learning rates."""
    try:
        factory = RULES[name]
    except KeyError:
        raise ValueError(f"rule: unknown {name!r}; choose one of {tuple(RULES)} or pass a callable") from None
    return factory(**kwargs)


def update_trace(trace: Tensor | None, spikes: Tensor, decay: float, eta: float) -> Tensor:
    r"""One trace step :math:`x_t = \Theta x_{t-1} + \eta s_t` (paper eq. 13); ``None`` starts from zero."""
    return eta * spikes if trace is None else decay * trace + eta * spikes


def population_decode(rates: Tensor, n_classes: int) -> Tensor:
    """Class scores ``[B, n_classes]`` of a population-coded output ``[B, n_classes * P]``: the mean rate of
    each class's ``P`` neurons (neurons ``c*P .. c*P + P-1`` code class ``c``). ``argmax`` picks the class
    whose population fires most."""
    b, n = rates.shape
    if n % n_classes:
        raise ValueError(f"population: {n} output neurons do not split into {n_classes} equal classes")
    return rates.view(b, n_classes, n // n_classes).mean(-1)


def population_reward(post: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    r"""The paper's R-STDP reward for population coding: for every output neuron of class ``c``,
    :math:`r = L_c - \bar O_c`, the one-hot label minus the mean spike of class ``c``'s population at this
    step.

    ``post``: spikes ``[B, n_classes * P]``; ``labels``: ``[B]`` class indices. Returns
    ``[B, n_classes * P]``.
    """
    mean = population_decode(post, n_classes)
    target = F.one_hot(labels.long(), n_classes).to(post.dtype)
    population = post.shape[1] // n_classes
    return (target - mean).repeat_interleave(population, dim=1)


class Plasticity(StatefulModule):
    """A plasticity rule attached to an ST block's synapse (``nn.Linear`` or ``nn.Conv2d``).

    It holds the pre- and postsynaptic traces (reset with the network's states before every sample) and,
    while :attr:`active` and in EIM, updates the synapse's weight after every step the block runs. In IIM it
    is detached and does nothing. Set :attr:`reward` before a step for reward-modulated rules: a tensor
    (scalar or per neuron ``[B, O]``), or a callable ``reward(post_spikes) -> reward`` evaluated at each step.

    Args:
        synapse: the ``nn.Linear`` or ``nn.Conv2d`` whose weight learns.
        rule: a built-in rule's name or any callable with :class:`PlasticityRule`'s signature.
        rule_kwargs: the built-in rule's learning rates.
        trace_decay: :math:`\\Theta` (paper 0.95; authors' code ``exp(-1/20)``).
        trace_eta: :math:`\\eta` (1).
        w_min, w_max: optional bounds the weight is clamped to after each update.
        iteration: the iteration mode (set with the network's).
    """

    state_attributes = ("pre_trace", "post_trace")

    def __init__(
        self,
        synapse: nn.Module,
        rule: str | PlasticityRule = "stdp",
        *,
        rule_kwargs: dict | None = None,
        trace_decay: float = 0.95,
        trace_eta: float = 1.0,
        w_min: float | None = None,
        w_max: float | None = None,
        iteration: str = "internal",
    ):
        super().__init__(iteration)
        if not isinstance(synapse, nn.Linear | nn.Conv2d):
            raise TypeError(
                f"synapse: plasticity attaches to nn.Linear or nn.Conv2d, got {type(synapse).__name__}"
            )
        if isinstance(synapse, nn.Conv2d) and (synapse.groups != 1 or synapse.padding_mode != "zeros"):
            raise ValueError("synapse: plastic convolutions need groups=1 and zero padding")
        if not 0.0 <= trace_decay <= 1.0:
            raise ValueError(f"trace_decay: {trace_decay} is outside [0, 1]")
        if callable(rule):
            if rule_kwargs:
                raise ValueError("rule_kwargs: only for a built-in rule given by name")
            self.rule_name = getattr(rule, "__name__", type(rule).__name__)
            self.rule = rule
        else:
            self.rule_name = rule
            self.rule = make_rule(rule, **(rule_kwargs or {}))
        # kept out of the module tree: the synapse belongs to its block, this only points at it
        self.__dict__["synapse"] = synapse
        self.trace_decay = float(trace_decay)
        self.trace_eta = float(trace_eta)
        self.w_min, self.w_max = w_min, w_max
        self.active = True
        self.reward: Tensor | float | Callable[[Tensor], Tensor] | None = None
        self.pre_trace: Tensor | None = None
        self.post_trace: Tensor | None = None
        self.updates = 0

    def reset_state(self) -> None:
        """Clear the traces (the reward is kept)."""
        self.pre_trace = None
        self.post_trace = None

    def _linear_form(self, pre: Tensor, post: Tensor) -> tuple[Tensor, Tensor]:
        """``pre [N, I]`` and ``post [N, O]`` for the synapse's ``[O, I]`` weight (a conv's patches)."""
        synapse = self.synapse
        if isinstance(synapse, nn.Linear):
            return pre.flatten(1), post.flatten(1)
        if post.dim() != 4 or post.shape[1] != synapse.out_channels:
            raise ValueError(
                f"plasticity: a conv synapse needs its neuron's output [B, {synapse.out_channels}, H, W] "
                f"(no pooling between them), got {tuple(post.shape)}"
            )
        patches = F.unfold(
            pre,
            synapse.kernel_size,
            dilation=synapse.dilation,
            padding=synapse.padding,
            stride=synapse.stride,
        )  # [B, I*k*k, P]
        return patches.transpose(1, 2).reshape(-1, patches.shape[1]), post.flatten(2).transpose(1, 2).reshape(
            -1, post.shape[1]
        )

    @torch.no_grad()
    def observe(self, pre: Tensor, post: Tensor, membrane: Tensor | None = None) -> None:
        """One streamed step: update the traces with this step's spikes, then ``W += rule(...)``.

        ``pre``: the synapse's input ``[B, ...]``; ``post``: the neuron's spikes; ``membrane``: its state.
        """
        if not self.active or self.iteration != "external":
            return
        pre, post = pre.detach(), post.detach()
        self.pre_trace = update_trace(self.pre_trace, pre, self.trace_decay, self.trace_eta)
        self.post_trace = update_trace(self.post_trace, post, self.trace_decay, self.trace_eta)
        pre_2d, post_2d = self._linear_form(pre, post)
        pre_trace_2d, post_trace_2d = self._linear_form(self.pre_trace, self.post_trace)
        reward = self.reward(post) if callable(self.reward) else self.reward
        if isinstance(reward, Tensor) and reward.dim() > 1 and isinstance(self.synapse, nn.Conv2d):
            reward = self._linear_form(pre, reward)[1]
        weight = self.synapse.weight
        membrane_2d = None
        if membrane is not None and membrane.shape == post.shape:
            membrane_2d = self._linear_form(pre, membrane.detach())[1]
        delta = self.rule(
            pre=pre_2d,
            post=post_2d,
            pre_trace=pre_trace_2d,
            post_trace=post_trace_2d,
            weight=weight.detach().flatten(1),
            reward=reward,
            membrane=membrane_2d,
        )
        if delta.shape != weight.flatten(1).shape:
            raise ValueError(
                f"rule {self.rule_name!r}: returned dW of shape {tuple(delta.shape)}, expected "
                f"{tuple(weight.flatten(1).shape)}"
            )
        weight.add_(delta.view_as(weight).to(weight.dtype))
        if self.w_min is not None or self.w_max is not None:
            weight.clamp_(self.w_min, self.w_max)
        self.updates += 1

    def extra_repr(self) -> str:
        return (
            f"rule={self.rule_name!r}, trace_decay={self.trace_decay}, trace_eta={self.trace_eta}, "
            f"active={self.active}, {super().extra_repr()}"
        )


def attach_plasticity(block: nn.Module, rule: str | PlasticityRule = "stdp", **kwargs) -> Plasticity:
    """Attach a :class:`Plasticity` to an ST block (its synapse and its neuron) and return it.

    The block must be a :class:`~bidl.layers.STBlock` without pooling (the rule pairs each synapse output with
    its neuron). Keyword arguments as :class:`Plasticity`.
    """
    from .layers import STBlock

    if not isinstance(block, STBlock):
        raise TypeError(
            f"block: plasticity attaches to an ST block (ConvLIF, FCLIF, ...), got {type(block).__name__}"
        )
    if block.pool is not None:
        raise ValueError(
            "block: a block with pooling cannot learn locally (its spikes do not map to the synapse)"
        )
    kwargs.setdefault("iteration", block.iteration)
    block.plasticity = Plasticity(block.synapse, rule, **kwargs)
    return block.plasticity


def detach_plasticity(block: nn.Module) -> None:
    """Remove the block's plasticity module (the learned weights stay)."""
    block.plasticity = None
