"""The chip graph's built-in operators: PyTorch custom ops for tracing, ONNX functions for the file.

Five operators of the ``bidl`` domain (paper section 4; SPEC 6). Each is one node of an exported graph, so a
chip compiler can match it by name, and each carries its definition in standard ONNX ops (a model-local
``FunctionProto``), so that ONNX Runtime or any other ONNX consumer executes it:

===========================  ========================================================  ===================
operator                     definition                                                attributes
===========================  ========================================================  ===================
``cmp_and_fire``             ``spike = (v > theta) ? 1 : 0``                           --
``reset_with_decay``         ``alpha * (spike ? v_reset : v) + beta`` (hard reset)      --
``soft_reset_with_decay``    ``alpha * (v - spike * theta) + beta`` (RMP soft reset)   --
``load_state``               ``identity``: the state read at the start of a step       ``state_id``, ``init``
``save_state``               ``identity``: the state written at the end of a step      ``state_id``
===========================  ========================================================  ===================

``load_state`` and ``save_state`` carry the state's unique id; ``init`` is the value every element takes at
a reset (between samples). ``soft_reset_with_decay`` is this project's addition for the RMP neuron, which the
paper's two built-ins do not cover.

:data:`TORCH_OPS` holds the custom ops (namespace ``bidl``) used while tracing; :func:`onnx_functions` returns
the ``FunctionProto`` definitions for a model's opset and :func:`register_onnx_schemas` registers the
operators' schemas with ``onnx`` (the exporter looks them up while it builds the graph).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "OPERATORS",
    "TORCH_OPS",
    "onnx_functions",
    "register_onnx_schemas",
    "translation_table",
]

DOMAIN = "bidl"
DOMAIN_VERSION = 1
OPERATORS = ("cmp_and_fire", "reset_with_decay", "soft_reset_with_decay", "load_state", "save_state")


def _as_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


@torch.library.custom_op("bidl::cmp_and_fire", mutates_args=())
def _cmp_and_fire(v: Tensor, theta: Tensor) -> Tensor:
    return (v > theta).to(v.dtype)


@torch.library.custom_op("bidl::reset_with_decay", mutates_args=())
def _reset_with_decay(v: Tensor, spike: Tensor, v_reset: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    return alpha * torch.where(spike > 0, v_reset, v) + beta


@torch.library.custom_op("bidl::soft_reset_with_decay", mutates_args=())
def _soft_reset_with_decay(v: Tensor, spike: Tensor, theta: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    return alpha * (v - spike * theta) + beta


@torch.library.custom_op("bidl::load_state", mutates_args=())
def _load_state(state: Tensor, state_id: str, init: float) -> Tensor:
    return state.clone()


@torch.library.custom_op("bidl::save_state", mutates_args=())
def _save_state(state: Tensor, state_id: str) -> Tensor:
    return state.clone()


def _fake_like_first(first: Tensor, *args) -> Tensor:
    return torch.empty_like(first)


def _fake_broadcast(v: Tensor, *params: Tensor) -> Tensor:
    shape = torch.broadcast_shapes(v.shape, *(p.shape for p in params))
    return v.new_empty(shape)


_cmp_and_fire.register_fake(_fake_broadcast)
_reset_with_decay.register_fake(_fake_broadcast)
_soft_reset_with_decay.register_fake(_fake_broadcast)
_load_state.register_fake(_fake_like_first)
_save_state.register_fake(_fake_like_first)


def _neuron_op(op):
    """Wrap a neuron custom op so that it takes scalars or tensors (as :func:`bidl.functional.lif_step`
    passes its parameters) and converts them to the membrane's dtype."""

    def call(v: Tensor, *params: Tensor | float) -> Tensor:
        return op(v, *(_as_tensor(p, v) for p in params))

    call.__name__ = op.__name__
    return call


TORCH_OPS = SimpleNamespace(
    cmp_and_fire=_neuron_op(torch.ops.bidl.cmp_and_fire),
    reset_with_decay=_neuron_op(torch.ops.bidl.reset_with_decay),
    soft_reset_with_decay=_neuron_op(torch.ops.bidl.soft_reset_with_decay),
    load_state=torch.ops.bidl.load_state,
    save_state=torch.ops.bidl.save_state,
)
"""The built-ins as PyTorch ops: pass to :func:`bidl.functional.inference_builtins` to trace a network's
neurons as one node each."""

# -- ONNX --------------------------------------------------------------------------------------------------

_SIGNATURES = {  # inputs, outputs, attributes (name -> onnx attribute type name)
    "cmp_and_fire": (("v", "theta"), ("spike",), {}),
    "reset_with_decay": (("v", "spike", "v_reset", "alpha", "beta"), ("v_next",), {}),
    "soft_reset_with_decay": (("v", "spike", "theta", "alpha", "beta"), ("v_next",), {}),
    "load_state": (("state",), ("value",), {"state_id": "STRING", "init": "FLOAT"}),
    "save_state": (("value",), ("state",), {"state_id": "STRING"}),
}
_DOCS = {
    "cmp_and_fire": "Fire: spike = 1 where v > theta, else 0 (in v's type).",
    "reset_with_decay": "Hard reset and leak: v_next = alpha * (spike ? v_reset : v) + beta.",
    "soft_reset_with_decay": "Soft (RMP) reset and leak: v_next = alpha * (v - spike * theta) + beta.",
    "load_state": "Read the state named state_id at the start of a step; at a reset it is init everywhere.",
    "save_state": "Write the state named state_id at the end of a step (read back by its load_state).",
}


def register_onnx_schemas() -> None:
    """Register the operators' schemas (domain ``bidl``, version 1) with ``onnx``; idempotent."""
    from onnx import defs

    float_types = ["tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)"]
    for name, (inputs, outputs, attributes) in _SIGNATURES.items():
        if defs.has(name, DOMAIN):
            continue
        schema = defs.OpSchema(
            name,
            DOMAIN,
            DOMAIN_VERSION,
            doc=_DOCS[name],
            inputs=[defs.OpSchema.FormalParameter(i, "T") for i in inputs],
            outputs=[defs.OpSchema.FormalParameter(o, "T") for o in outputs],
            type_constraints=[("T", float_types, "floating-point tensors")],
            attributes=[
                defs.OpSchema.Attribute(a, getattr(defs.OpSchema.AttrType, kind), a)
                for a, kind in attributes.items()
            ],
        )
        defs.register_schema(schema)


def translation_table() -> dict:
    """The torch -> ONNX translations: each custom op becomes one ``bidl`` node (:func:`onnx_functions`
    supplies the bodies afterwards, so that the exporter's passes cannot inline them)."""
    import onnxscript

    register_onnx_schemas()
    opset = onnxscript.values.Opset(domain=DOMAIN, version=DOMAIN_VERSION)

    def cmp_and_fire(v, theta):
        return opset.cmp_and_fire(v, theta)

    def reset_with_decay(v, spike, v_reset, alpha, beta):
        return opset.reset_with_decay(v, spike, v_reset, alpha, beta)

    def soft_reset_with_decay(v, spike, theta, alpha, beta):
        return opset.soft_reset_with_decay(v, spike, theta, alpha, beta)

    def load_state(state, state_id: str, init: float):
        return opset.load_state(state, state_id=state_id, init=init)

    def save_state(value, state_id: str):
        return opset.save_state(value, state_id=state_id)

    ops = torch.ops.bidl
    return {
        ops.cmp_and_fire.default: cmp_and_fire,
        ops.reset_with_decay.default: reset_with_decay,
        ops.soft_reset_with_decay.default: soft_reset_with_decay,
        ops.load_state.default: load_state,
        ops.save_state.default: save_state,
    }


def onnx_functions(opset_version: int) -> list:
    """The five operators as ONNX ``FunctionProto`` s in standard ops of the default domain at
    ``opset_version`` (the model's), in the order of :data:`OPERATORS`."""
    from onnx import helper

    def node(op, inputs, outputs, **attrs):
        return helper.make_node(op, inputs, outputs, **attrs)

    bodies = {
        "cmp_and_fire": [
            node("Greater", ["v", "theta"], ["above"]),
            node("CastLike", ["above", "v"], ["spike"]),
        ],
        "reset_with_decay": [
            node("Cast", ["spike"], ["fired"], to=helper.TensorProto.BOOL),
            node("Where", ["fired", "v_reset", "v"], ["reset"]),
            node("Mul", ["alpha", "reset"], ["decayed"]),
            node("Add", ["decayed", "beta"], ["v_next"]),
        ],
        "soft_reset_with_decay": [
            node("Mul", ["spike", "theta"], ["dropped"]),
            node("Sub", ["v", "dropped"], ["reset"]),
            node("Mul", ["alpha", "reset"], ["decayed"]),
            node("Add", ["decayed", "beta"], ["v_next"]),
        ],
        "load_state": [node("Identity", ["state"], ["value"])],
        "save_state": [node("Identity", ["value"], ["state"])],
    }
    functions = []
    for name in OPERATORS:
        inputs, outputs, attributes = _SIGNATURES[name]
        function = helper.make_function(
            DOMAIN,
            name,
            list(inputs),
            list(outputs),
            bodies[name],
            [helper.make_opsetid("", opset_version)],
            attributes=list(attributes),
        )
        function.doc_string = _DOCS[name]
        functions.append(function)
    return functions
