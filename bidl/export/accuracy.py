"""Top-1 accuracy of exported step graphs on a test split, run the way a deployment runs them.

:func:`evaluate_graphs` streams every sample of a split (or ``samples`` of them, evenly spaced over it)
through each exported graph one timestep at a time with :class:`~bidl.export.runtime.StepRuntime` on the CPU
(states reset before each batch, fed back between steps, the class read from the output after the last step),
and through the PyTorch network in EIM (:func:`bidl.evaluation.predict`, as the evaluate rule does), and gives
each its top-1 with a 95 % Wilson score interval (:func:`wilson_interval`), the number of samples and the
seconds it took.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..evaluation import predict
from ..state import iteration_mode, reset_states

__all__ = ["wilson_interval", "top1_summary", "spread_indices", "graph_predictions", "evaluate_graphs"]

Z95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` (fractions in [0, 1]); ``(0, 1)`` for n = 0.

    Example:
        >>> [round(b, 4) for b in wilson_interval(8, 10)]
        [0.4902, 0.9433]
    """
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"wilson_interval: need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` distinct indices of ``range(total)``, evenly spaced from 0 (``i * total // count``).

    Example:
        >>> spread_indices(10, 4)
        [0, 2, 5, 7]
    """
    if not 0 < count <= total:
        raise ValueError(f"spread_indices: need 0 < count <= total, got count={count}, total={total}")
    return [i * total // count for i in range(count)]


def top1_summary(predictions: np.ndarray, labels: np.ndarray, seconds: float) -> dict[str, Any]:
    """Top-1 (percent) of ``predictions`` against ``labels``, its 95 % Wilson interval (percent), the
    number of samples and correct ones, and the seconds the run took."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"top1_summary: {predictions.shape[0]} predictions for {labels.shape[0]} labels")
    n, correct = int(labels.size), int((predictions == labels).sum())
    low, high = wilson_interval(correct, n)
    return {
        "samples": n,
        "correct": correct,
        "top1": round(100.0 * correct / n, 3) if n else float("nan"),
        "ci95": [round(100.0 * low, 3), round(100.0 * high, 3)],
        "seconds": round(seconds, 3),
    }


def graph_predictions(
    model, dataset: Dataset, *, batch_size: int = 16, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The class each sample of ``dataset`` gets from the exported ``model`` (path, bytes or
    ``ModelProto``), streamed step by step through ONNX Runtime on the CPU, and the labels."""
    from .runtime import StepRuntime

    runtime = StepRuntime(model, threads=threads)
    predictions, labels = [], []
    for frames, target in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        inputs = frames.numpy()
        runtime.reset(inputs.shape[0])
        for t in range(inputs.shape[1]):
            out = runtime.step(inputs[:, t])
        predictions.append(out.reshape(out.shape[0], -1).argmax(1))
        labels.append(np.asarray(target).reshape(-1))
    return np.concatenate(predictions), np.concatenate(labels)


def evaluate_graphs(
    network: nn.Module,
    graphs: dict[str, Any],
    dataset: Dataset,
    *,
    samples: int | None = None,
    batch_size: int = 16,
    threads: int | None = None,
) -> dict[str, Any]:
    """Top-1 of the PyTorch ``network`` (EIM) and of each exported graph in ``graphs`` (``{key: model}``) on
    ``dataset`` (``samples=None``) or ``samples`` of its samples, evenly spaced over it (every
    ``len(dataset) / samples``-th: a split stored class by class gives every class its share), every one on
    the same samples.

    Returns ``{"samples", "split_samples", "pytorch": summary, <key>: summary, ...,
    "agreement": {<key>: share of samples whose class equals PyTorch's, percent}}`` (summaries from
    :func:`top1_summary`).
    """
    total = len(dataset)
    if samples is not None and samples < 1:
        raise ValueError(f"evaluate_graphs: samples must be a positive count or None, got {samples}")
    count = total if samples is None else min(samples, total)
    subset = dataset if count == total else Subset(dataset, spread_indices(total, count))
    start = time.perf_counter()
    outputs, labels = predict(network, subset, mode="external", batch_size=batch_size)
    with iteration_mode(network, "external"):
        reset_states(network)  # leave no state of the last batch behind
    reference = outputs.argmax(1).numpy()
    labels = labels.numpy().reshape(-1)
    result: dict[str, Any] = {
        "samples": count,
        "split_samples": total,
        "pytorch": top1_summary(reference, labels, time.perf_counter() - start),
        "agreement": {},
    }
    for key, graph in graphs.items():
        start = time.perf_counter()
        predicted, graph_labels = graph_predictions(graph, subset, batch_size=batch_size, threads=threads)
        if not np.array_equal(graph_labels, labels):
            raise RuntimeError(f"evaluate_graphs: {key} saw the samples in another order than PyTorch")
        result[key] = top1_summary(predicted, labels, time.perf_counter() - start)
        result["agreement"][key] = round(100.0 * float((predicted == reference).mean()), 3)
    return result
