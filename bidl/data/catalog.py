"""One entry point from a dataset name and a cached split file to a torch ``Dataset``."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

__all__ = ["DATASET_NAMES", "open_split", "describe_source"]

DATASET_NAMES = ("dvs128_gesture",)

_SOURCE_DESCRIPTIONS = {
    ("dvs128_gesture", "standin"): "stand-in (generated, IBM AEDAT 3.1 layout)",
    ("dvs128_gesture", "ibm"): "real (IBM DVS128 Gesture release)",
    ("dvs128_gesture", "tonic"): "real (DVS128 Gesture, tonic's copy)",
}


def open_split(dataset: str, path: str | Path) -> Dataset:
    """The cached split ``path`` of ``dataset`` as a ``Dataset`` of ``(frames [T, ...] float32, label)``."""
    if dataset == "dvs128_gesture":
        from .dvs128 import DVS128Frames

        return DVS128Frames(path)
    raise KeyError(f"dataset: unknown name {dataset!r}; known: {DATASET_NAMES}")


def describe_source(dataset: str, source: str) -> str:
    """Human-readable data source for tables, e.g. ``stand-in (generated, ...)``."""
    return _SOURCE_DESCRIPTIONS.get((dataset, source), f"{source}")
