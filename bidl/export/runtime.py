"""The runtime tool: run an exported single-step graph over T timesteps with ONNX Runtime.

:class:`StepRuntime` holds the states of a batch between steps: :meth:`~StepRuntime.reset` sets every state to
its initial value (from the model's ``bidl.states`` metadata), :meth:`~StepRuntime.step` runs one timestep and
feeds each ``<id>:next`` output back as the ``<id>`` input of the next, and :meth:`~StepRuntime.run` does a
whole batch of sequences, resetting first, as a chip's host would.

Example:
    >>> runtime = StepRuntime("results/default/export/dvs128_asm/model.onnx")  # doctest: +SKIP
    >>> outputs = runtime.run(events)  # [B, T, 2, 40, 40] -> [B, T, 11], states reset first  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .onnx import INPUT_NAME, OUTPUT_NAME, read_metadata
from .states import StateSpec

__all__ = ["StepRuntime"]


class StepRuntime:
    """An ONNX Runtime session over an exported step graph, with the states fed back between steps.

    Args:
        model: the ``.onnx`` path, its bytes or an ``onnx.ModelProto``.
        providers: ONNX Runtime execution providers (CPU by default).
        threads: intra-op threads (``None``: ONNX Runtime's default).
        extra_outputs: names of intermediate values to return too (e.g. the outputs of ``cmp_and_fire``
            nodes, for a spike-by-spike check); they are added as graph outputs of an in-memory copy.
    """

    def __init__(
        self,
        model,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        extra_outputs: Sequence[str] = (),
    ):
        import onnx
        import onnxruntime as ort

        if isinstance(model, str | Path):
            model = onnx.load(str(model))
        elif isinstance(model, bytes):
            model = onnx.load_from_string(model)
        metadata = read_metadata(model)
        self.name = model.graph.name
        self.states: list[StateSpec] = metadata["states"]
        self.input_info = metadata.get("input", {"name": INPUT_NAME})
        self.extra_outputs = list(extra_outputs)
        if self.extra_outputs:
            model = type(model).FromString(model.SerializeToString())
            known = {o.name for o in model.graph.output}
            model.graph.output.extend(
                onnx.ValueInfoProto(name=n) for n in self.extra_outputs if n not in known
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=list(providers))
        self._output_names = [OUTPUT_NAME, *(s.output_name for s in self.states), *self.extra_outputs]
        self._dtypes = {i.name: _numpy_type(i.type) for i in self.session.get_inputs()}
        self.values: dict[str, np.ndarray] = {}
        self.extras: dict[str, np.ndarray] = {}

    def reset(self, batch: int) -> None:
        """Set every state of a batch of ``batch`` samples to its initial value."""
        self.values = {
            s.input_name: np.full((batch, *s.shape), s.init, dtype=self._dtypes[s.input_name])
            for s in self.states
        }

    def step(self, x: np.ndarray) -> np.ndarray:
        """One timestep ``[B, ...] -> output [B, ...]``; the states advance (call :meth:`reset` first)."""
        if not self.values and self.states:
            raise RuntimeError(f"{self.name}: call reset(batch) before the first step")
        feeds = {INPUT_NAME: np.asarray(x, dtype=self._dtypes[INPUT_NAME]), **self.values}
        outputs = self.session.run(self._output_names, feeds)
        n = len(self.states)
        self.values = {s.input_name: value for s, value in zip(self.states, outputs[1 : 1 + n], strict=True)}
        self.extras = dict(zip(self.extra_outputs, outputs[1 + n :], strict=True))
        return outputs[0]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Sequences ``[B, T, ...]`` from reset states: the output of every step, ``[B, T, ...]``."""
        inputs = np.asarray(inputs)
        self.reset(inputs.shape[0])
        return np.stack([self.step(inputs[:, t]) for t in range(inputs.shape[1])], axis=1)


def _numpy_type(onnx_type: str) -> type:
    types = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
    }
    if onnx_type not in types:
        raise TypeError(f"StepRuntime: unsupported input type {onnx_type}")
    return types[onnx_type]
