"""Check an exported step graph by running it: spikes and outputs against the PyTorch network.

:func:`reference_run` runs the network in EIM over ``[B, T, ...]`` inputs and records, per step, its output
and the spikes of every neuron (by module path). :func:`onnx_run` does the same with the ONNX graph through
:class:`~bidl.export.runtime.StepRuntime`, reading the spikes from the graph's ``cmp_and_fire`` nodes
(their values are named ``<module path>:spike``). :func:`compare_runs` puts the two side by side: spikes that
differ per neuron layer, the largest output difference, and whether the top-1 class agrees.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..functional import cmp_and_fire, inference_builtins, reset_with_decay, soft_reset_with_decay
from ..neurons import LIF
from ..state import iteration_mode, reset_states

__all__ = ["reference_run", "spike_outputs", "onnx_run", "compare_runs"]


class _SpikeRecorder:
    """The neuron built-ins in plain PyTorch (the same arithmetic as the training path), recording every
    spike tensor under the path of the neuron that fired it."""

    reset_with_decay = staticmethod(reset_with_decay)
    soft_reset_with_decay = staticmethod(soft_reset_with_decay)

    def __init__(self):
        self.current = ""
        self.spikes: dict[str, list[Tensor]] = defaultdict(list)
        self.margins: dict[str, list[Tensor]] = defaultdict(list)

    def cmp_and_fire(self, v: Tensor, theta) -> Tensor:
        spike = cmp_and_fire(v, theta)
        self.spikes[self.current].append(spike)
        self.margins[self.current].append((v - theta).abs())
        return spike


def reference_run(network: nn.Module, inputs: Tensor) -> dict[str, Any]:
    """The PyTorch EIM run of ``network`` over ``inputs [B, T, ...]`` from reset states.

    Returns ``{"output": [B, T, ...], "spikes": {module path: [B, T, ...]}, "margins": {...}}`` (numpy
    arrays; the margins are ``|U - theta|``, how far each neuron's membrane was from its threshold), with the
    neuron layers in the order they run.
    """
    recorder = _SpikeRecorder()
    hooks = []
    for path, module in network.named_modules():
        if isinstance(module, LIF):

            def enter(_module, _args, path=path):
                recorder.current = path

            hooks.append(module.register_forward_pre_hook(enter))
    outputs = []
    try:
        with iteration_mode(network, "external"), inference_builtins(recorder), torch.no_grad():
            reset_states(network)
            for t in range(inputs.shape[1]):
                outputs.append(network(inputs[:, t]))
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "output": torch.stack(outputs, 1).float().numpy(),
        "spikes": {path: torch.stack(s, 1).float().numpy() for path, s in recorder.spikes.items()},
        "margins": {path: torch.stack(m, 1).float().numpy() for path, m in recorder.margins.items()},
    }


def spike_outputs(model) -> dict[str, str]:
    """The ``cmp_and_fire`` values of an exported model by neuron path (``{path: value name}``)."""
    return {
        node.name.removesuffix("/cmp_and_fire"): node.output[0]
        for node in model.graph.node
        if node.domain == "bidl" and node.op_type == "cmp_and_fire"
    }


def onnx_run(model, inputs: np.ndarray | Tensor, *, threads: int | None = None) -> dict[str, Any]:
    """:func:`reference_run` with the exported ``model`` (a ``ModelProto``) through ONNX Runtime."""
    from .runtime import StepRuntime

    spikes = spike_outputs(model)
    runtime = StepRuntime(model, threads=threads, extra_outputs=list(spikes.values()))
    inputs = inputs.numpy() if isinstance(inputs, Tensor) else np.asarray(inputs)
    runtime.reset(inputs.shape[0])
    outputs, recorded = [], defaultdict(list)
    for t in range(inputs.shape[1]):
        outputs.append(runtime.step(inputs[:, t]))
        for path, name in spikes.items():
            recorded[path].append(runtime.extras[name])
    return {
        "output": np.stack(outputs, 1).astype(np.float32),
        "spikes": {path: np.stack(s, 1).astype(np.float32) for path, s in recorded.items()},
    }


def _first_divergence(reference: dict[str, Any], exported: dict[str, Any], sample: int, tie_atol: float):
    """Where sample ``sample``'s spikes first differ (in run order: step, then layer), and whether every
    spike that differs there is a threshold tie (the reference membrane within ``tie_atol`` of theta)."""
    layers = list(reference["spikes"])
    steps = reference["output"].shape[1]
    for t in range(steps):
        for path in layers:
            ours, theirs = reference["spikes"][path][sample, t], exported["spikes"][path][sample, t]
            differ = ours != theirs
            if differ.any():
                margins = reference["margins"][path][sample, t][differ]
                return {
                    "step": t,
                    "layer": path,
                    "spikes": int(differ.sum()),
                    "max_margin": float(margins.max()),
                    "tie": bool((margins <= tie_atol).all()),
                }
    return None


def compare_runs(
    reference: dict[str, Any], exported: dict[str, Any], *, atol: float = 1e-4, tie_atol: float = 1e-5
) -> dict[str, Any]:
    """Spikes and outputs of two runs.

    Per neuron layer: the spikes (total) and how many differ; the largest and mean output difference (every
    step), and the share of samples whose top-1 class at the last step agrees. Per sample, the first spike
    that differs (in run order) and whether it is a threshold tie: a membrane within ``tie_atol`` of theta,
    which a different but equally valid float summation order can put on either side (after it, the runs
    legitimately part). ``passed``: every sample either has the same spikes and outputs within ``atol``, or
    parts first at a tie.
    """
    if set(reference["spikes"]) != set(exported["spikes"]):
        missing = sorted(set(reference["spikes"]) ^ set(exported["spikes"]))
        raise ValueError(f"compare_runs: the runs record different neuron layers: {missing}")
    layers = {}
    for path, spikes in reference["spikes"].items():
        other = exported["spikes"][path]
        layers[path] = {
            "spikes": int(spikes.sum()),
            "elements": int(spikes.size),
            "differing": int((spikes != other).sum()),
        }
    out, other = reference["output"], exported["output"]
    difference = np.abs(out.astype(np.float64) - other.astype(np.float64))
    per_sample = difference.reshape(out.shape[0], -1).max(1) if difference.size else np.zeros(out.shape[0])
    last, other_last = out[:, -1].reshape(out.shape[0], -1), other[:, -1].reshape(out.shape[0], -1)
    divergences = {}
    identical = 0
    for b in range(out.shape[0]):
        first = _first_divergence(reference, exported, b, tie_atol) if "margins" in reference else None
        if first is not None:
            divergences[b] = first
        elif per_sample[b] <= atol:
            identical += 1
    unexplained = [b for b, d in divergences.items() if not d["tie"]]
    return {
        "layers": layers,
        "spikes": sum(v["spikes"] for v in layers.values()),
        "elements": sum(v["elements"] for v in layers.values()),
        "differing_spikes": sum(v["differing"] for v in layers.values()),
        "max_abs_output_error": float(difference.max()) if difference.size else 0.0,
        "mean_abs_output_error": float(difference.mean()) if difference.size else 0.0,
        "top1_agreement": float((last.argmax(1) == other_last.argmax(1)).mean())
        if last.shape[1] > 1
        else 1.0,
        "samples": int(out.shape[0]),
        "identical_samples": identical,
        "parted_at_tie": sorted(b for b, d in divergences.items() if d["tie"]),
        "first_divergence": {str(b): d for b, d in divergences.items()},
        "atol": atol,
        "tie_atol": tie_atol,
        "passed": not unexplained and identical + len(divergences) == out.shape[0],
    }
