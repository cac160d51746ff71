"""Export a network as a state-aware single-step graph for neuromorphic chips (paper section 4; SPEC 6).

- :mod:`bidl.export.ops`: the graph's built-ins (``cmp_and_fire``, ``reset_with_decay``,
  ``soft_reset_with_decay``, ``load_state``, ``save_state``) as PyTorch custom ops and ONNX functions.
- :mod:`bidl.export.states`: the states of a network, with reproducible UUIDs and initial values.
- :mod:`bidl.export.onnx`: :func:`export_onnx` writes the EIM step as ONNX (fp32, or fp16: in half
  precision throughout, or fp16 synapses with float32 states and threshold compare).
- :mod:`bidl.export.runtime`: :class:`StepRuntime` runs an exported step graph over T timesteps with ONNX
  Runtime (the paper's "runtime tool").
- :mod:`bidl.export.accuracy`: top-1 of exported graphs on a test split, streamed step by step through
  ONNX Runtime as deployed, with 95 % Wilson intervals.
- :mod:`bidl.export.nir`: NIR export of the networks NIR can express, and the cross-checks through
  snnTorch's and Norse's NIR importers.

``onnx``, ``onnxscript``, ``onnxruntime`` and ``nir`` are imported only when those modules are used.
"""

from .ops import OPERATORS, TORCH_OPS
from .states import ExportError, StateSpec, state_id, state_specs

__all__ = ["OPERATORS", "TORCH_OPS", "ExportError", "StateSpec", "state_id", "state_specs"]
