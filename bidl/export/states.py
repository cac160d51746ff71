"""The states of a single-step (EIM) network: what they are, their ids, their shapes and initial values.

Every :class:`~bidl.state.StatefulModule` of a network holds named state tensors (a neuron's membrane ``v``,
an aggregation's ``accumulator`` and ``steps``, a LIF+ neuron's conductances, an LSTM's ``h`` and ``c``, a
plasticity rule's traces). :func:`state_specs` finds them by running one step and describes each as a
:class:`StateSpec`; its id is a UUID derived from the network's class, the module path and the state name
(:func:`state_id`), so exporting the same model again gives the same ids.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..plasticity import Plasticity
from ..state import StatefulModule, iteration_mode, reset_states

__all__ = ["STATE_NAMESPACE", "ExportError", "StateSpec", "state_id", "state_specs", "check_exportable"]

STATE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/LynxiTech/BIDL#state")
"""The UUID namespace of state ids (fixed: ids are reproducible across machines and versions)."""


class ExportError(ValueError):
    """A network, or a part of it, that the exporter cannot express; the message names the module."""


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a single-step graph.

    Attributes:
        id: its unique id (a UUID string); the graph input that its load node reads has this name.
        module: the path of the module holding it (``""`` for the network itself).
        name: the state's name in that module (``v``, ``accumulator``, ...).
        shape: its shape without the batch axis (the batch is axis 0 of the tensor).
        dtype: its element type (``float32``, ``float16``).
        init: the value of every element at a reset (before each sample).
    """

    id: str
    module: str
    name: str
    shape: tuple[int, ...]
    dtype: str
    init: float = 0.0

    @property
    def input_name(self) -> str:
        """The graph input read by the load node: the id."""
        return self.id

    @property
    def output_name(self) -> str:
        """The graph output written by the save node."""
        return f"{self.id}:next"

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "shape": list(self.shape),
            "input": self.input_name,
            "output": self.output_name,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StateSpec:
        fields = {k: data[k] for k in ("id", "module", "name", "dtype", "init")}
        return cls(shape=tuple(int(n) for n in data["shape"]), **fields)


def state_id(network: nn.Module, module_path: str, name: str) -> str:
    """The state's UUID: version 5 of ``<network class>/<module path>.<state name>`` in
    :data:`STATE_NAMESPACE`."""
    return str(uuid.uuid5(STATE_NAMESPACE, f"{type(network).__name__}/{module_path}.{name}"))


def check_exportable(network: nn.Module) -> None:
    """Refuse what a single-step inference graph cannot hold: a module in training mode (dropout, batch
    statistics) and an active local-learning rule (its weight updates would make the weights states)."""
    for path, module in network.named_modules():
        if isinstance(module, Plasticity) and module.active:
            raise ExportError(
                f"{path}: an active plasticity rule ({module.rule_name}) updates its weights every step; the "
                f"exporter writes inference graphs only: set {path}.active = False (its traces then stay "
                "at zero and are not exported)"
            )
    for path, module in network.named_modules():
        if module.training:
            raise ExportError(f"{path or type(network).__name__}: is in training mode; call network.eval()")


def state_specs(network: nn.Module, example_input: Tensor) -> list[StateSpec]:
    """The states of ``network`` in EIM, found by running one step on ``example_input`` (``[B, ...]``)
    from a reset; in the order of ``network.named_modules()`` and each module's state names. The network is
    left in its iteration mode, with its states reset."""
    check_exportable(network)
    with iteration_mode(network, "external"), torch.no_grad():
        network(example_input)
        specs = []
        for path, module in network.named_modules():
            if not isinstance(module, StatefulModule):
                continue
            for name, tensor in module.get_state().items():
                specs.append(
                    StateSpec(
                        id=state_id(network, path, name),
                        module=path,
                        name=name,
                        shape=tuple(tensor.shape[1:]),
                        dtype=str(tensor.dtype).removeprefix("torch."),
                    )
                )
        reset_states(network)
    return specs
