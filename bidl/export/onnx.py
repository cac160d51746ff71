"""Export a network's single-step (EIM) form as a state-aware ONNX graph.

The graph computes one timestep: ``(input, state_1, ..., state_n) -> (output, state_1', ..., state_n')``.

- Every state (:mod:`bidl.export.states`) is a graph input named by its id, read through a
  ``bidl.load_state`` node (attributes ``state_id`` and ``init``, the value at a reset), and a graph output
  named ``<id>:next``, written by a ``bidl.save_state`` node. A runtime feeds the outputs back as the next
  step's inputs and sets the inputs to ``init`` between samples (:class:`bidl.export.runtime.StepRuntime`).
- Every neuron fires with one ``bidl.cmp_and_fire`` node and resets and leaks with one
  ``bidl.reset_with_decay`` (hard reset) or ``bidl.soft_reset_with_decay`` (soft) node. These five are ONNX
  functions of the ``bidl`` domain, defined in the file in standard ops (:mod:`bidl.export.ops`): a chip
  compiler matches them by name, ONNX Runtime executes their definitions.
- The batch axis is dynamic; the model's ``metadata_props`` hold the states (``bidl.states``), the input and
  output, the neurons' parameters (``bidl.neurons``), the precision of each part (``bidl.precision``) and the
  format version, as JSON.
- fp16: either half precision throughout (states, membranes and theta too), or fp16 synapses (Conv, Linear,
  Embedding: weights and products, fed an fp16 input) whose outputs are cast to float32, where the membranes
  integrate and are compared against theta, BatchNorm, reset, leak and the readout run, as in the float32
  network (``state_dtype=torch.float32``; the mixed precision of the authors' fp16 training under
  ``torch.autocast``).
- The file is reproducible: the same model exported again gives the same bytes (node metadata that names
  source files is dropped, serialisation is deterministic).

Traced with ``torch.onnx.export(dynamo=True)``; the neuron built-ins and the state nodes are PyTorch custom
ops (``torch.ops.bidl``) translated into single ``bidl`` nodes.
"""

from __future__ import annotations

import ast
import copy
import json
import logging
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import __version__
from ..functional import inference_builtins
from ..neurons import LIF
from ..state import iteration_mode, reset_states
from .ops import DOMAIN, DOMAIN_VERSION, TORCH_OPS, onnx_functions, translation_table
from .states import ExportError, StateSpec, check_exportable, state_specs

__all__ = [
    "FORMAT",
    "HALF_MODULES",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "SPIKE_SUFFIX",
    "StepGraph",
    "export_onnx",
    "neuron_parameters",
    "read_metadata",
    "save_onnx",
]

SPIKE_SUFFIX = ":spike"
FORMAT = "bidl state-aware single-step graph, version 1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
_KEPT_NODE_METADATA = ("namespace", "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy")
HALF_MODULES = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)
"""The synapses: in an fp16 graph with float32 states, these run in half precision (weights and products,
as ``torch.autocast`` runs convolutions and matrix products in the authors' fp16 training); everything else
(BatchNorm, neurons, aggregation, recurrent states) runs in float32."""


class StepGraph(nn.Module):
    """``network`` as a pure function of one step: ``forward(x, *states) -> (y, *next_states)``.

    Each state is loaded through ``load_state`` into its module before the step and saved through
    ``save_state`` after it (in the order of ``specs``); the network's own held states are reset afterwards,
    so tracing leaves nothing behind.
    """

    def __init__(self, network: nn.Module, specs: list[StateSpec]):
        super().__init__()
        self.network = network
        self.specs = list(specs)

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        if len(states) != len(self.specs):
            raise ValueError(f"StepGraph: expected {len(self.specs)} states, got {len(states)}")
        modules = dict(self.network.named_modules())
        loaded: dict[str, dict[str, Tensor]] = defaultdict(dict)
        for spec, state in zip(self.specs, states, strict=True):
            loaded[spec.module][spec.name] = TORCH_OPS.load_state(state, spec.id, spec.init)
        for path, values in loaded.items():
            modules[path].set_state(values)
        y = self.network(x)
        saved = [
            TORCH_OPS.save_state(modules[spec.module].get_state()[spec.name], spec.id) for spec in self.specs
        ]
        reset_states(self.network)
        return (y, *saved)


def neuron_parameters(network: nn.Module) -> dict[str, dict[str, Any]]:
    """Each neuron's parameters and modes by module path: alpha, beta, theta, v_reset (a number for ASM, a
    list per channel for CSM), reset, sharing, whether it has BatchNorm on its membrane, and for LIAF its
    analog readout."""
    neurons = {}
    for path, module in network.named_modules():
        if not isinstance(module, LIF):
            continue
        params = {}  # as the step uses them (a learned alpha clamped); a list per channel for CSM
        for name, value in module.neuron_parameters(2).items():
            value = value.detach().float()
            params[name] = value.item() if module.sharing == "all" else value.flatten().tolist()
        entry = {
            "type": type(module).__name__,
            **params,
            "reset": module.reset,
            "sharing": module.sharing,
            "membrane_norm": module.norm is not None,
            "analog": module.analog,
        }
        if module.analog:
            entry.update(
                activation=module.activation, liaf_mode=module.liaf_mode, liaf_readout=module.liaf_readout
            )
        if hasattr(module, "modes"):
            entry["lifplus_modes"] = dict(module.modes)
        neurons[path] = entry
    return neurons


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's chatter that says nothing about this export (torchvision ops it skips,
    deprecations inside torch, the shared batch axis name)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*")
            yield
    finally:
        logger.setLevel(level)


def _floats_to(dtype: torch.dtype):
    """A forward pre-hook / hook that casts the floating tensors it sees to ``dtype``."""

    def cast(value):
        if isinstance(value, Tensor) and value.is_floating_point():
            return value.to(dtype)
        if isinstance(value, tuple):
            return tuple(cast(v) for v in value)
        return value

    def pre_hook(_module, args):
        return cast(tuple(args))

    def hook(_module, _args, output):
        return cast(output)

    return pre_hook, hook


def _half_synapses(network: nn.Module) -> nn.Module:
    """A copy of ``network`` whose synapses (:data:`HALF_MODULES`) hold fp16 weights and compute in fp16,
    their inputs cast to fp16 and their outputs back to float32; the network casts a half-precision input
    to float32 on entry, so that every other module (and every state) stays float32."""
    network = copy.deepcopy(network)
    to_half, _ = _floats_to(torch.float16)
    to_float, from_half = _floats_to(torch.float32)
    for module in network.modules():
        if isinstance(module, HALF_MODULES):
            module.half()
            module.register_forward_pre_hook(to_half)
            module.register_forward_hook(from_half)
    network.register_forward_pre_hook(to_float)
    return network


def _precision(dtype: torch.dtype, state_dtype: torch.dtype) -> dict[str, str]:
    """What the graph computes in which precision (the ``bidl.precision`` metadata)."""
    name, state = str(dtype).removeprefix("torch."), str(state_dtype).removeprefix("torch.")
    return {
        "input": name,
        "synapses": name,  # Conv, Linear, Embedding: weights and products
        "states": state,
        "neurons": state,  # integrate, BatchNorm on the membrane, cmp_and_fire against theta, reset and leak
        "other": state,  # BatchNorm on the synaptic current, aggregation, activations, recurrent cells
    }


def _batched(example_input: Tensor, batch: int) -> Tensor:
    """The example repeated to ``batch`` rows (tracing a batch of 1 would fix the batch axis to 1)."""
    return example_input[:1].expand(batch, *example_input.shape[1:]).clone()


def _clean(model, keep: tuple[str, ...] = _KEPT_NODE_METADATA) -> None:
    """Drop node metadata that records source files and lines (machine-dependent) or FX internals."""
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if p.key in keep]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def _scope(node) -> str:
    """The path of the module a node was traced in (``""`` for the network itself)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            owner = scopes[-2] if len(scopes) > 1 else ""
            return "" if owner == "network" else owner.removeprefix("network.")
    return ""


def _name_bidl_nodes(model, specs: list[StateSpec]) -> None:
    """Name every ``bidl`` node ``<owner>/<operator>`` (the owner: the neuron's module path, or the state's
    ``<module>.<name>``) and every spike value ``<neuron path>:spike``, so that a reader of the graph (or
    :mod:`bidl.export.verify`) finds each neuron's nodes by its path."""
    by_id = {s.id: s for s in specs}
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    graph_outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.domain != DOMAIN:
            continue
        if node.op_type in ("load_state", "save_state"):
            spec = by_id[next(a.s.decode() for a in node.attribute if a.name == "state_id")]
            owner = f"{spec.module}.{spec.name}" if spec.module else spec.name
        else:
            owner = _scope(node) or model.graph.name
        name, n = f"{owner}/{node.op_type}", 1
        while name in taken:
            name, n = f"{owner}/{node.op_type}_{n}", n + 1
        taken.add(name)
        node.name = name
        if node.op_type == "cmp_and_fire" and node.output[0] not in graph_outputs:
            renamed[node.output[0]] = f"{owner}{SPIKE_SUFFIX}"
    for node in model.graph.node:
        node.input[:] = [renamed.get(v, v) for v in node.input]
        node.output[:] = [renamed.get(v, v) for v in node.output]
    for info in model.graph.value_info:
        info.name = renamed.get(info.name, info.name)


def export_onnx(
    network: nn.Module,
    example_input: Tensor,
    *,
    name: str | None = None,
    dtype: torch.dtype = torch.float32,
    state_dtype: torch.dtype | None = None,
    metadata: dict[str, Any] | None = None,
):
    """The single-step graph of ``network`` as an ``onnx.ModelProto`` (see the module docstring).

    Args:
        network: any bidl network (in eval mode; its iteration mode is restored afterwards).
        example_input: one timestep ``[B, ...]`` of the network's input (e.g. ``[1, 2, 40, 40]`` events,
            ``[1]`` token ids).
        name: the graph's name (default: the network's class name).
        dtype: ``torch.float32`` or ``torch.float16`` (the fp16 variant: weights and floating inputs in
            half precision; the network is copied, not converted in place).
        state_dtype: with ``dtype=torch.float16``, the precision of everything but the synapses: ``None`` or
            ``torch.float16`` for a graph in half precision throughout (states, membranes, theta and the
            threshold compare too); ``torch.float32`` for fp16 synapses (:data:`HALF_MODULES`: weights and
            products) with float32 states, neuron arithmetic and threshold compare, BatchNorm and readout,
            so that a membrane is compared against theta exactly as in the float32 network. The
            ``bidl.precision`` metadata records which.
        metadata: extra entries for ``metadata_props`` (JSON-encoded unless strings).

    Raises:
        ExportError: a module in training mode or an active plasticity rule.
    """
    import onnx

    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"dtype: export writes float32 or float16 graphs, got {dtype}")
    state_dtype = dtype if state_dtype is None else state_dtype
    if state_dtype not in (dtype, torch.float32):
        raise ValueError(
            f"state_dtype: a {dtype} graph keeps its states in {dtype} or float32, got {state_dtype}"
        )
    check_exportable(network)
    if dtype != torch.float32 and state_dtype == torch.float32:
        network = _half_synapses(network)
    elif dtype != torch.float32:
        network = copy.deepcopy(network).to(dtype)
    x = _batched(example_input, 2)
    if x.is_floating_point():
        x = x.to(dtype)
    specs = state_specs(network, x)
    states = [torch.full((2, *s.shape), s.init, dtype=getattr(torch, s.dtype)) for s in specs]
    batch = torch.export.Dim("batch")
    dynamic = ({0: batch}, tuple({0: batch} for _ in states))  # (x, *states)
    step = StepGraph(network, specs).eval()
    with iteration_mode(network, "external"), inference_builtins(TORCH_OPS), torch.no_grad(), _quiet():
        program = torch.onnx.export(
            step,
            (x, *states),
            dynamo=True,
            custom_translation_table=translation_table(),
            input_names=[INPUT_NAME, *(s.input_name for s in specs)],
            output_names=[OUTPUT_NAME, *(s.output_name for s in specs)],
            dynamic_shapes=dynamic,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    used = {n.op_type for n in model.graph.node if n.domain == DOMAIN}
    model.functions.extend(f for f in onnx_functions(opset) if f.name in used)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    model.graph.name = name or type(network).__name__
    _name_bidl_nodes(model, specs)
    _clean(model)
    model.doc_string = (
        f"{model.graph.name}: one timestep of a bidl network (EIM). {FORMAT}. States are inputs named by "
        "their ids and outputs '<id>:next'; feed the outputs back every step and set the inputs to their "
        "'init' between samples (metadata 'bidl.states')."
    )
    entries = {
        "bidl.format": FORMAT,
        "bidl.version": __version__,
        "bidl.model": model.graph.name,
        "bidl.dtype": str(dtype).removeprefix("torch."),
        "bidl.precision": _precision(dtype, state_dtype),
        "bidl.input": {
            "name": INPUT_NAME,
            "shape": list(example_input.shape[1:]),
            "dtype": str(x.dtype).removeprefix("torch."),
        },
        "bidl.output": {"name": OUTPUT_NAME},
        "bidl.states": [s.to_dict() for s in specs],
        "bidl.neurons": neuron_parameters(network),
        **(metadata or {}),
    }
    del model.metadata_props[:]
    for key, value in entries.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=text))
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(model, path: str | Path) -> Path:
    """Write ``model`` with deterministic serialisation (the same model gives the same bytes)."""
    path = Path(path)
    path.write_bytes(model.SerializeToString(deterministic=True))
    return path


def read_metadata(model) -> dict[str, Any]:
    """The ``bidl.*`` metadata of an exported model (a ``ModelProto``), JSON decoded; ``states`` as
    :class:`StateSpec` s."""
    entries = {}
    for prop in model.metadata_props:
        if not prop.key.startswith("bidl."):
            continue
        try:
            entries[prop.key.removeprefix("bidl.")] = json.loads(prop.value)
        except json.JSONDecodeError:
            entries[prop.key.removeprefix("bidl.")] = prop.value
    if "states" not in entries:
        raise ExportError(f"model {model.graph.name!r}: no 'bidl.states' metadata; not a bidl step graph")
    entries["states"] = [StateSpec.from_dict(s) for s in entries["states"]]
    return entries
