"""Export a trained network as a chip bundle, verified by running it (the pipeline's ``export`` rule).

:func:`export_bundle` writes, into one folder (atomically: all of it or nothing):

- ``model.onnx``: the state-aware single-step graph (:mod:`bidl.export.onnx`), exported twice to check that
  the file is reproducible;
- ``model_fp16.onnx``: its half-precision variant (fp16 synapses; states, neuron arithmetic and the threshold
  compare in float32 by default, or everything in fp16: ``fp16_state``);
- ``model.nir``: the NIR graph, where NIR can express the network (:mod:`bidl.export.nir`);
- ``manifest.json``: the states (ids, modules, shapes, dtypes, initial values), the neuron parameters, the
  input, the files with their SHA-256, the built-in nodes of the graph;
- ``verification.json``: the ONNX graph run by :class:`~bidl.export.runtime.StepRuntime` over every timestep
  of real samples against the PyTorch network (spikes per neuron layer, output error, top-1 agreement), the
  fp16 graph against the fp32 network, and the NIR graph imported into snnTorch against bidl (spikes); and,
  given the test split, the top-1 accuracy of the PyTorch network (EIM) and of the fp32 and fp16 graphs, each
  streamed step by step through ONNX Runtime on the CPU as a deployment runs it, with 95 % Wilson intervals
  (:mod:`bidl.export.accuracy`).

The fp32 ONNX check is strict: every sample must give the same spikes and outputs within ``atol``, or part
from the PyTorch run first at a threshold tie (a membrane within ``tie_atol`` of theta, which float summation
in another order may put on either side; :func:`~bidl.export.verify.compare_runs`). Anything else fails the
export, after the report is written beside the folder as ``<name>.verification.failed.json``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .. import __version__
from ..io import atomic_write_json, file_digest, replace_dir
from .accuracy import evaluate_graphs
from .onnx import export_onnx, read_metadata, save_onnx
from .verify import compare_runs, onnx_run, reference_run

__all__ = ["ExportVerificationError", "export_bundle", "FILES"]

FILES = {
    "onnx": "model.onnx",
    "onnx_fp16": "model_fp16.onnx",
    "nir": "model.nir",
    "manifest": "manifest.json",
    "verification": "verification.json",
}


class ExportVerificationError(RuntimeError):
    """The exported graph does not compute what the PyTorch network computes."""


def _sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _stack(samples: Sequence[Tensor]) -> Tensor:
    """Samples ``[T, ...]`` as a batch ``[B, T, ...]`` (the shortest T if they differ)."""
    steps = min(s.shape[0] for s in samples)
    return torch.stack([s[:steps] for s in samples])


def _nir_part(network: nn.Module, inputs: Tensor, folder: Path, dt: float) -> dict[str, Any]:
    """Write the NIR graph if NIR can express the network, and cross-check it in snnTorch."""
    from .nir import NIRExportError, bidl_spikes, export_nir, import_snntorch, run_snntorch

    example = inputs[:1, 0]
    try:
        summary = export_nir(network, example, folder / FILES["nir"], dt=dt)
    except NIRExportError as error:
        return {"written": False, "reason": str(error)}
    summary.pop("path", None)  # the job's temporary folder, not where the file ends up
    result: dict[str, Any] = {"written": True, "file": FILES["nir"], "dt": dt, "summary": summary}
    try:
        module = import_snntorch(folder / FILES["nir"])
    except Exception as error:  # the importer's own limits (e.g. one threshold for all neurons)
        result["snntorch"] = {"imported": False, "reason": f"{type(error).__name__}: {error}"}
        return result
    differing = total = elements = 0
    for sample in inputs:  # the importers flatten the batch away: one sample at a time
        sequence = sample.unsqueeze(1)  # [T, 1, ...]
        ours = bidl_spikes(network, sequence)
        theirs = run_snntorch(module, sequence)
        differing += int((ours != theirs.reshape(ours.shape)).sum())
        total += int(ours.sum())
        elements += ours.numel()
    result["snntorch"] = {
        "imported": True,
        "samples": int(inputs.shape[0]),
        "output_spikes": total,
        "elements": elements,
        "differing_spikes": differing,
        "same_spikes": differing == 0,
    }
    return result


def export_bundle(
    network: nn.Module,
    samples: Sequence[Tensor],
    folder: str | Path,
    *,
    name: str,
    atol: float = 1e-4,
    tie_atol: float = 1e-5,
    fp16: bool = True,
    fp16_state: str = "float32",
    nir_dt: float = 1e-4,
    metadata: dict[str, Any] | None = None,
    test_set: Dataset | None = None,
    eval_samples: int | None = None,
    eval_batch_size: int = 16,
    threads: int | None = None,
) -> dict[str, Any]:
    """Export ``network`` (eval mode) into ``folder`` and verify it on ``samples`` (each ``[T, ...]``).

    ``fp16_state``: the precision of the fp16 graph's states and everything but its synapses
    (``"float32"`` or ``"float16"``; :func:`~bidl.export.onnx.export_onnx`'s ``state_dtype``). With
    ``test_set``, the report's ``accuracy`` holds the top-1 of the PyTorch network and of each graph on
    ``eval_samples`` of its samples, evenly spaced (``None``: all of them), run in batches of
    ``eval_batch_size`` with ``threads`` ONNX Runtime threads (:func:`~bidl.export.accuracy.evaluate_graphs`).

    Returns the verification report. Raises :class:`ExportVerificationError` when the fp32 ONNX graph gives
    different spikes or an output error above ``atol``, :class:`~bidl.export.ExportError` when the network
    cannot be exported; ``folder`` is then left as it was.
    """
    folder = Path(folder)
    if fp16_state not in ("float32", "float16"):
        raise ValueError(f"fp16_state: 'float32' or 'float16', got {fp16_state!r}")
    network = network.eval()
    inputs = _stack(samples)
    example = inputs[:1, 0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        graph = export_onnx(network, example, name=name, metadata=metadata)
        again = export_onnx(network, example, name=name, metadata=metadata)
        reproducible = graph.SerializeToString(deterministic=True) == again.SerializeToString(
            deterministic=True
        )
        save_onnx(graph, work / FILES["onnx"])
        reference = reference_run(network, inputs)
        report: dict[str, Any] = {
            "model": name,
            "samples": int(inputs.shape[0]),
            "timesteps": int(inputs.shape[1]),
            "reproducible": reproducible,
            "onnx": compare_runs(reference, onnx_run(graph, inputs), atol=atol, tie_atol=tie_atol),
        }
        check = report["onnx"]
        graphs = {"onnx": graph}
        if fp16:
            half = export_onnx(
                network,
                example,
                name=name,
                dtype=torch.float16,
                state_dtype=getattr(torch, fp16_state),
                metadata=metadata,
            )
            save_onnx(half, work / FILES["onnx_fp16"])
            half_inputs = inputs.half() if inputs.is_floating_point() else inputs
            report["onnx_fp16"] = compare_runs(reference, onnx_run(half, half_inputs), tie_atol=tie_atol)
            report["onnx_fp16"].pop("passed")  # measured, not required to agree
            report["onnx_fp16"]["precision"] = read_metadata(half)["precision"]
            graphs["onnx_fp16"] = half
        if test_set is not None:
            report["accuracy"] = evaluate_graphs(
                network, graphs, test_set, samples=eval_samples, batch_size=eval_batch_size, threads=threads
            )
        report["nir"] = _nir_part(network, inputs, work, nir_dt)
        meta = read_metadata(graph)
        files = {key: file for key, file in FILES.items() if (work / file).exists()}
        manifest = {
            "model": name,
            "bidl_version": __version__,
            "format": meta["format"],
            "input": meta["input"],
            "output": meta["output"],
            "timesteps": int(inputs.shape[1]),
            "states": [s.to_dict() for s in meta["states"]],
            "neurons": meta["neurons"],
            "builtin_nodes": dict(
                sorted(Counter(n.op_type for n in graph.graph.node if n.domain == "bidl").items())
            ),
            "opset": {o.domain or "ai.onnx": o.version for o in graph.opset_import},
            "nir": {"written": report["nir"]["written"], "dt": nir_dt}
            | ({} if report["nir"]["written"] else {"reason": report["nir"]["reason"]}),
            "files": {
                file: _sha256(work / file) for file in files.values() if file.endswith((".onnx", ".nir"))
            },
            **(metadata or {}),
        }
        atomic_write_json(work / FILES["manifest"], manifest)
        if not (check["passed"] and reproducible):
            failed = folder.parent / f"{folder.name}.verification.failed.json"
            atomic_write_json(failed, report)
            raise ExportVerificationError(
                f"{name}: the exported ONNX graph does not match the PyTorch network (differing spikes "
                f"{check['differing_spikes']}, first per sample {check['first_divergence']}, max output "
                f"error {check['max_abs_output_error']:.3g}, atol {atol}, reproducible {reproducible}); "
                f"see {failed}"
            )
        atomic_write_json(work / FILES["verification"], report)
        replace_dir(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report
