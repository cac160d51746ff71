"""Iteration modes (IIM / EIM) and network-wide state handling.

Every module of ``bidl`` that behaves differently in the two iteration modes derives from
:class:`SpatioTemporalModule`:

- ``iteration="internal"`` (IIM): the module takes a whole batch-first sequence ``[B, T, ...]`` and
  loops over T itself; stateless operations (conv, BN, pooling) run on all ``B*T`` frames at once.
- ``iteration="external"`` (EIM): the module takes one timestep ``[B, ...]`` per call and keeps its state
  between calls until :func:`reset_states` (or the module's ``reset_state``) clears it.

One network object runs in either mode: :func:`set_iteration_mode` switches every submodule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor, nn

__all__ = [
    "ITERATION_MODES",
    "SpatioTemporalModule",
    "StatefulModule",
    "set_iteration_mode",
    "get_iteration_mode",
    "reset_states",
    "iteration_mode",
]

ITERATION_MODES = ("internal", "external")


def _check_mode(mode: str) -> str:
    if mode not in ITERATION_MODES:
        raise ValueError(f"iteration: unknown mode {mode!r}; choose one of {ITERATION_MODES}")
    return mode


class SpatioTemporalModule(nn.Module):
    """A module whose ``forward`` depends on the iteration mode."""

    def __init__(self, iteration: str = "internal"):
        super().__init__()
        self.iteration = _check_mode(iteration)

    def extra_repr(self) -> str:
        return f"iteration={self.iteration!r}"


class StatefulModule(SpatioTemporalModule):
    """A module that holds state between EIM steps; ``reset_state`` returns it to its initial value.

    The state is a set of named tensors, each ``[B, ...]`` and zero at reset (held lazily: ``None`` until the
    first step). :meth:`get_state` and :meth:`set_state` read and replace them by name, which is how an
    exporter turns them into the load and save nodes of a single-step graph (:mod:`bidl.export`). By default
    the names are :attr:`state_attributes`, plain tensor attributes; a module that holds its state in
    another form overrides both methods.
    """

    state_attributes: tuple[str, ...] = ()
    """The attributes holding the EIM state (each a tensor or ``None`` before the first step)."""

    def reset_state(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def get_state(self) -> dict[str, Tensor]:
        """The EIM state tensors held now, by name (``{}`` before the first step after a reset)."""
        return {name: value for name in self.state_attributes if (value := getattr(self, name)) is not None}

    def set_state(self, state: Mapping[str, Tensor]) -> None:
        """Replace the held state by ``state`` (the names of :meth:`get_state`); the next step starts there"""
        unknown = sorted(set(state) - set(self.state_attributes))
        if unknown:
            raise KeyError(
                f"{type(self).__name__}: unknown state {unknown}; it holds {list(self.state_attributes)}"
            )
        for name, value in state.items():
            setattr(self, name, value)


def set_iteration_mode(network: nn.Module, mode: str) -> nn.Module:
    """Switch every :class:`SpatioTemporalModule` in ``network`` to ``mode`` and reset all states."""
    _check_mode(mode)
    for module in network.modules():
        if isinstance(module, SpatioTemporalModule):
            module.iteration = mode
    reset_states(network)
    return network


def get_iteration_mode(network: nn.Module) -> str:
    """The iteration mode shared by the network's modules (``ValueError`` if they disagree)."""
    modes = {m.iteration for m in network.modules() if isinstance(m, SpatioTemporalModule)}
    if len(modes) != 1:
        raise ValueError(f"network has modules in iteration modes {sorted(modes)}; expected exactly one")
    return modes.pop()


def reset_states(network: nn.Module) -> None:
    """Reset every stateful module of ``network`` (membranes, accumulators) to its initial value."""
    for module in network.modules():
        if isinstance(module, StatefulModule):
            module.reset_state()


@contextmanager
def iteration_mode(network: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Temporarily run ``network`` in ``mode``; states are reset on entry and on exit."""
    previous = get_iteration_mode(network)
    set_iteration_mode(network, mode)
    try:
        yield network
    finally:
        set_iteration_mode(network, previous)
