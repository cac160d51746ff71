"""The datasets of the paper: one entry point from a dataset name and a cached split to a torch ``Dataset``.

Every dataset has a module under ``bidl.data`` with the same parts: a reader of its raw layout (on the file
formats of :mod:`bidl.data.formats`), ``preprocess(raw_root, out_dir, **params)`` (``train.npz``,
``test.npz``, ``split.json``), a :class:`bidl.data.cache.CachedSplit` subclass, and
``generate_standin(raw_root, seed=..., **params)`` (a stand-in in that raw layout, written by its module in
:mod:`bidl.data.standins` and importable from the dataset module). :data:`DATASETS` names them; the
workflow, the scripts and the tables read this table, so a new dataset is one module, one stand-in module and
one :class:`DatasetInfo` here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from bidl.data.sources import SOURCES

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DatasetInfo",
    "describe_source",
    "get_dataset",
    "open_split",
    "timestep_rate_hz",
]


@dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline needs to know about one dataset.

    Attributes:
        name: key used in configs, paths and :data:`bidl.data.sources.SOURCES`.
        title: the dataset's name in tables.
        module: module under ``bidl.data`` (reader, ``preprocess``, and ``generate_standin`` from
            :mod:`bidl.data.standins`).
        dataset_class: the :class:`~bidl.data.cache.CachedSplit` subclass in ``module``.
        standin_layout: the raw layout the stand-in writes (the layout of one of the real sources).
        layout_param: ``preprocess`` takes the raw ``layout`` as a keyword (datasets with several real
            layouts, such as DVS128 Gesture's IBM release and tonic's copy).
        standin_files: glob, relative to the raw root, of the raw files the stand-in writes.
        temporal: the classes differ in the order of what happens (the time-shuffled control is meaningful);
            False for CIFAR10-DVS, whose recordings are of still images.
        train_flag: the dataset class takes ``train=`` (random temporal sampling for training).
        reads_raw: the dataset class reads the raw files at load time (its cache is an index of them, as
            Jester's, whose frames are decoded from the JPEG folders), so rules that open a split also need
            the raw copy.
        standin_description: one line on the stand-in task, for tables.
    """

    name: str
    title: str
    module: str
    dataset_class: str
    standin_layout: str
    standin_files: str
    temporal: bool
    standin_description: str
    layout_param: bool = False
    train_flag: bool = False
    reads_raw: bool = False

    def load_module(self):
        return importlib.import_module(f"bidl.data.{self.module}")

    def layout(self, source: str) -> str:
        """The raw layout of ``source`` (``standin`` or a name in :data:`SOURCES`)."""
        if source == "standin":
            return self.standin_layout
        return SOURCES[self.name][source].layout

    def sources(self) -> tuple[str, ...]:
        """``standin`` followed by the real sources of the registry."""
        return ("standin", *sorted(SOURCES.get(self.name, {})))


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="dvs128_gesture",
            title="DVS128 Gesture",
            module="dvs128",
            dataset_class="DVS128Frames",
            standin_layout="ibm_aedat31",
            standin_files="DvsGesture/*.aedat",
            temporal=True,
            layout_param=True,
            standin_description="moving-disc gestures; 4 class pairs differ only in the order of 2 moves",
        ),
        DatasetInfo(
            name="cifar10_dvs",
            title="CIFAR10-DVS",
            module="cifar10_dvs",
            dataset_class="CIFAR10DVSFrames",
            standin_layout="cifar10dvs_aedat2",
            standin_files="*/*.aedat",
            temporal=True,
            standin_description="two objects in sequence; class pairs differ only in their order",
        ),
        DatasetInfo(
            name="imdb",
            title="IMDB",
            module="imdb",
            dataset_class="IMDBTokens",
            standin_layout="aclimdb",
            standin_files="aclImdb/*/*/*.txt",
            temporal=True,
            standin_description="reviews decided by a final, maybe negated, verdict; bags of words collide",
        ),
        DatasetInfo(
            name="jester",
            title="Jester",
            module="jester",
            dataset_class="JesterClips",
            standin_layout="jester_20bn",
            standin_files="**/*.jpg",
            temporal=True,
            train_flag=True,
            reads_raw=True,
            standin_description="hand swipes and their reversals: pairs are the same frames played backwards",
        ),
        DatasetInfo(
            name="luna16",
            title="LUNA16",
            module="luna16",
            dataset_class="Luna16Cubes",
            standin_layout="luna16_mhd",
            standin_files="**/*.*raw",  # CT volumes .raw, compressed lung masks .zraw
            temporal=True,
            standin_description="malignant teardrop vs benign round nodules: like slices in another order",
        ),
        DatasetInfo(
            name="rgb_gesture",
            title="RGB-gesture",
            module="rgb_gesture",
            dataset_class="RGBGestureFrames",
            standin_layout="rgb_gesture_jpeg",
            standin_files="**/*.jpg",
            temporal=True,
            standin_description="grey-video hand gestures; pairs differ only in the order of moves",
        ),
    )
}

#: the dataset names, in the paper's order of Table 2
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; raises ``KeyError`` naming the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"dataset: unknown name {name!r}; known: {list(DATASET_NAMES)}") from None


def open_split(dataset: str, path: str | Path, *, train: bool = False, **kwargs: Any) -> Dataset:
    """The cached split ``path`` of ``dataset`` as a ``Dataset`` of ``(x [T, ...], label)``.

    ``train`` selects random temporal sampling where the dataset has it (Jester); ``kwargs`` go to the
    dataset class (``transform``, ``indices``, Jester's ``n_frames`` ...).
    """
    info = get_dataset(dataset)
    cls = getattr(info.load_module(), info.dataset_class)
    if info.train_flag:
        kwargs["train"] = train
    return cls(path, **kwargs)


def timestep_rate_hz(
    dataset: str, preprocess: dict[str, Any], loader: dict[str, Any] | None = None
) -> float | None:
    """How many timesteps per second the sensor delivers for ``dataset`` under these preprocessing and
    loader parameters, or None where a timestep is not a moment of time (LUNA16's slices, IMDB's words).

    DVS128 Gesture and CIFAR10-DVS (time framing): one frame per ``window_us``; RGB-gesture: the camera's
    25 fps; Jester: 12 fps sampled with stride 1.5 (8 timesteps per second).
    """
    loader = loader or {}
    if dataset == "dvs128_gesture":
        return 1e6 / preprocess.get("window_us", 25_000)
    if dataset == "cifar10_dvs":
        return (
            1e6 / preprocess.get("window_us", 5_000) if preprocess.get("framing", "time") == "time" else None
        )
    if dataset == "rgb_gesture":
        from bidl.data.rgb_gesture import FPS

        return float(FPS)
    if dataset == "jester":
        from bidl.data.jester import FPS

        return FPS / loader.get("stride", 1.5)
    get_dataset(dataset)  # unknown names raise
    return None


def describe_source(dataset: str, source: str) -> str:
    """Human-readable data source for tables, e.g. ``stand-in (generated, ibm_aedat31 layout)``."""
    info = DATASETS.get(dataset)
    if source == "standin":
        layout = info.standin_layout if info else "?"
        return f"stand-in (generated, {layout} layout)"
    src = SOURCES.get(dataset, {}).get(source)
    if src is None:
        return source
    return f"real ({info.title if info else dataset}, {source}: {src.layout})"
