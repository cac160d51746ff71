"""Training-time data augmentation as the authors train: per-sample tensor transforms of the cached frames,
seeded per (seed, epoch, sample), applied to the training split only.

An augmentation is configured per dataset (``datasets.<name>.augment`` in the pipeline config) as a mapping
from transform names to their parameters, applied in the order written; ``null`` (or an empty mapping)
trains on the cached samples as they are. The transforms work on one sample ``[T, C, H, W]`` (float) and
draw the same geometry for all T frames of it (a crop, a flip, a resized crop), as the authors' ``*Video``
transforms do (``datasets/pipelines/bidl_transforms.py`` of their repository):

- ``crop: {size, padding}``: ``RandomCropVideo``: zero-pad ``padding`` pixels on every side, then crop
  ``size x size`` (``null``: the sample's own size) at a uniformly drawn offset (DVS128 Gesture and
  RGB-gesture: 40 with padding 4; CIFAR10-DVS: 128 with padding 16).
- ``flip: {p, dim}``: ``RandomFlipVideo``: mirror the frames with probability ``p`` along ``dim``
  (``height`` = axis 2 of ``[T, C, H, W]``, ``width`` = axis 3). The authors' ``direction='horizontal'``
  flips axis 2 (``np.flip(frames, axis=2)``), which in the spikingjelly orientation of CIFAR10-DVS frames
  (``y = 127 - a``: the height axis runs along the sensor's x address) mirrors the scene left-right.
- ``croppad: {allowed_ratio, min_pad, max_pad, modes}``: ``CropPadByRatioVideo`` with ``croppad=None``:
  a frame whose width/height ratio lies within ``allowed_ratio`` is padded by ``round(min_pad *
  min(H, W))`` on every side; a narrower one left and right, a wider one top and bottom, towards the
  nearest allowed ratio; no side by more than ``max_pad * min(H, W)``. The padding mode is drawn per sample
  from ``modes`` (numpy's ``np.pad`` modes; a mode listed n times is drawn n times as often).
  ``source_ratio``: the width/height ratio of the frames as recorded, where the cache resized them to
  another shape (Jester's 176 x 100 px frames, decoded as squares): the rule then runs on the recorded
  geometry (a 176 x 100 frame gets 16 % of its height above and below, none at the sides, as the
  authors' pipeline pads the JPEG frames) and the pixels are converted to the sample's.
- ``cutout: {area, prob, fill}``: ``CutOutVideo``: one rectangle of ``area * H * W`` pixels with a random
  aspect ratio at a random place, filled in each frame independently with probability ``prob`` (the same
  rectangle in every frame it fills); ``fill: null`` draws one value per channel uniformly between the
  sample's minimum and maximum (the authors draw an integer grey level in that range of their uint8
  frames), a number fills with it.
- ``resized_crop: {size, scale, ratio, attempts}``: ``RandomResizedCropVideo`` with ``center=(0, 0)``: a
  crop of ``scale`` (a range) of the area and width/height ``ratio`` (a range, drawn log-uniformly) at a
  random place, ``attempts`` tries before the centre crop of the whole frame, resized bilinearly to
  ``size x size`` (``null``: back to the sample's size as it entered the augmentation, the network's
  input). ``source_ratio`` as for ``croppad``: the crop's aspect ratio is drawn on the recorded geometry.
- ``luna_x4: true``: not random: the training set of four fixed copies of every cube, as the authors'
  ``datasets/prepare_Luna16.py`` writes them (``_aug0`` .. ``_aug3``): the original, rotated by 90 and
  by 180 degrees in the slice plane (``scipy.ndimage.rotate(cube, angle, axes=(1, 2))`` on their
  ``[D, H, W]`` cube, exactly ``torch.rot90(x, k, dims=(2, 3))`` here) and flipped along H (``np.flip(cube,
  axis=1)``). The augmented split is four times as long: item ``j`` is copy ``j // N`` of cube ``j % N``.

:class:`AugmentedSplit` wraps a training split. Item ``j`` of epoch ``e`` draws its transforms from a
generator seeded by ``(seed, e, j)`` only (never the global RNG), so the same seed and epoch give the same
augmented batches, in any process, worker or data-parallel shard, and a training resumed at an epoch
boundary continues as an uninterrupted one. Evaluation never sees it: the pipeline wraps the training split
of :func:`bidl.training.train` and nothing else (validation, evaluation, probes, cost and export open the
cached splits directly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from bidl.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "PAD_MODES",
    "Augmentation",
    "AugmentedSplit",
    "augment_problems",
    "Crop",
    "CropPad",
    "CutOut",
    "Flip",
    "ResizedCrop",
    "describe",
    "luna_x4",
    "parse_augment",
    "sample_generator",
]

#: numpy's ``np.pad`` modes that ``croppad`` may draw; the authors' list has ``empty`` too, whose
#: uninitialised values no seed reproduces, so it is refused
PAD_MODES = (
    "constant",
    "edge",
    "linear_ramp",
    "maximum",
    "mean",
    "median",
    "minimum",
    "reflect",
    "symmetric",
    "wrap",
)
#: the four fixed copies of ``luna_x4``, in the authors' order (``_aug0`` .. ``_aug3``)
LUNA_X4 = ("original", "rot90", "rot180", "flip_h")
_SALT = 0xA06  # separates these draws from other per-sample streams seeded by (seed, epoch, index)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of sample ``index``'s augmentation in ``epoch``: a pure function of the three."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index), _SALT]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (), generator=g))


def _check_frames(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"augment.{name}: works on float frames [T, C, H, W], got {x.dtype} {tuple(x.shape)}"
        )


@dataclass(frozen=True)
class Crop:
    """``RandomCropVideo(size, padding)``: zero padding, then one random ``size x size`` crop for all T."""

    size: int | None = None
    padding: int = 0

    def __call__(self, x: torch.Tensor, g: torch.Generator, entry: tuple[int, int]) -> torch.Tensor:
        _check_frames(x, "crop")
        p = self.padding
        if p:
            x = F.pad(x, (p, p, p, p))
        h, w = x.shape[-2:]
        ch, cw = (self.size, self.size) if self.size is not None else entry
        if ch > h or cw > w:
            raise ValueError(
                f"augment.crop: size {self.size} exceeds the padded frame {h} x {w} "
                f"({h - 2 * p} x {w - 2 * p} plus padding {p})"
            )
        top, left = _randint(g, 0, h - ch), _randint(g, 0, w - cw)
        return x[..., top : top + ch, left : left + cw].contiguous()


@dataclass(frozen=True)
class Flip:
    """``RandomFlipVideo(flip_prob=p)``: all T frames mirrored along ``dim`` with probability ``p``."""

    p: float = 0.5
    dim: str = "width"

    def __call__(self, x: torch.Tensor, g: torch.Generator, entry: tuple[int, int]) -> torch.Tensor:
        _check_frames(x, "flip")
        if _uniform(g) < self.p:
            return x.flip(2 if self.dim == "height" else 3)
        return x


@dataclass(frozen=True)
class CropPad:
    """``CropPadByRatioVideo(croppad=None, allowed_ratio, min_padd, max_padd, pad_mode=modes)``."""

    allowed_ratio: tuple[float, float] = (1.0, 4 / 3)
    min_pad: float = 0.1
    max_pad: float = 0.2
    modes: tuple[str, ...] = ("constant",)
    source_ratio: float | None = None

    def padding(self, h: int, w: int, stretch: float = 1.0) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) pixels for an ``h x w`` frame (the authors' rule), computed on the
        frame as recorded, ``stretch`` times as wide (:func:`_stretch`), and converted back."""
        hv, wv = h, w * stretch
        ratio, (low, high) = wv / hv, self.allowed_ratio
        if low <= ratio <= high:
            pad = [round(self.min_pad * min(hv, wv))] * 4
        elif ratio < low:
            dw = round((hv * low - wv) / 2)
            pad = [dw, 0, dw, 0]
        else:
            dh = round((wv / high - hv) / 2)
            pad = [0, dh, 0, dh]
        left, top, right, bottom = (round(min(p, self.max_pad * min(wv, hv))) for p in pad)
        return round(left / stretch), top, round(right / stretch), bottom

    def __call__(self, x: torch.Tensor, g: torch.Generator, entry: tuple[int, int]) -> torch.Tensor:
        _check_frames(x, "croppad")
        left, top, right, bottom = self.padding(*x.shape[-2:], _stretch(self.source_ratio, entry))
        mode = self.modes[_randint(g, 0, len(self.modes) - 1)]
        padded = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
        return torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32)).to(x.dtype)


@dataclass(frozen=True)
class CutOut:
    """``CutOutVideo(area, fill, prob)``: one rectangle, filled in each frame with probability ``prob``."""

    area: float = 0.2
    prob: float = 0.4
    fill: float | None = None

    def __call__(self, x: torch.Tensor, g: torch.Generator, entry: tuple[int, int]) -> torch.Tensor:
        _check_frames(x, "cutout")
        t, c, h, w = x.shape
        flags = torch.rand(t, generator=g) < self.prob
        if not bool(flags.any()):
            return x
        area = self.area * h * w
        # the authors' range of the rectangle's width/height ratio: from (h - 1) high to w wide
        low, high = area / min(area, h - 1) ** 2, area / max(area / w, 2) ** 2
        r = math.exp(_uniform(g, math.log(low), math.log(high)))
        h2 = max(1, min(h - 1, int(math.sqrt(area / r))))
        w2 = max(1, min(w - 1, int(math.sqrt(area * r))))
        left, top = _randint(g, 0, w - w2 - 1), _randint(g, 0, h - h2 - 1)
        if self.fill is None:
            lo, hi = float(x.min()), float(x.max())
            fill = lo + (hi - lo) * torch.rand(c, generator=g, dtype=torch.float64)
        else:
            fill = torch.full((c,), float(self.fill), dtype=torch.float64)
        x = x.clone()
        block = x[flags, :, top : top + h2, left : left + w2]
        x[flags, :, top : top + h2, left : left + w2] = fill.to(x.dtype)[None, :, None, None].expand_as(block)
        return x


@dataclass(frozen=True)
class ResizedCrop:
    """``RandomResizedCropVideo(center=(0, 0), size, scale, ratio)``: one crop for all T, resized."""

    size: int | None = None
    scale: tuple[float, float] = (0.4, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    attempts: int = 10
    source_ratio: float | None = None

    def box(self, h: int, w: int, g: torch.Generator) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the crop (mmcls's ``RandomResizedCrop.get_params``)."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.attempts):
            target = _uniform(g, *self.scale) * area
            aspect = math.exp(_uniform(g, *log_ratio))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return _randint(g, 0, h - ch), _randint(g, 0, w - cw), ch, cw
        ratio = w / h  # the fallback: the central crop of the whole frame within the allowed ratios
        if ratio < min(self.ratio):
            cw, ch = w, round(w / min(self.ratio))
        elif ratio > max(self.ratio):
            cw, ch = round(h * max(self.ratio)), h
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, x: torch.Tensor, g: torch.Generator, entry: tuple[int, int]) -> torch.Tensor:
        _check_frames(x, "resized_crop")
        h, w = x.shape[-2:]
        stretch = _stretch(self.source_ratio, entry)
        if stretch == 1.0:
            top, left, ch, cw = self.box(h, w, g)
        else:  # drawn on the frame as recorded (stretch times as wide), then mapped back
            top, left_v, ch, cw_v = self.box(h, max(1, round(w * stretch)), g)
            cw = min(w, max(1, round(cw_v / stretch)))
            left = min(w - cw, round(left_v / stretch))
        crop = x[..., top : top + ch, left : left + cw]
        size = (self.size, self.size) if self.size is not None else entry
        return F.interpolate(crop, size=size, mode="bilinear", align_corners=False)


def _stretch(source_ratio: float | None, entry: tuple[int, int]) -> float:
    """How many times as wide as in the sample the frame was as recorded: a sample resized to ``entry`` =
    (H, W) from frames of width/height ``source_ratio`` (Jester: 100 px high, mostly 176 wide, resized to a
    square); 1 when ``source_ratio`` is None."""
    if source_ratio is None:
        return 1.0
    return source_ratio * entry[0] / entry[1]


def luna_x4(x: torch.Tensor, copy: int) -> torch.Tensor:
    """Copy ``copy`` (0..3) of a ``[T, C, H, W]`` cube: original, rot90, rot180 (slice plane), H flipped."""
    if copy == 0:
        return x
    if copy in (1, 2):
        return torch.rot90(x, copy, dims=(2, 3)).contiguous()
    if copy == 3:
        return x.flip(2)
    raise IndexError(f"luna_x4: copy {copy} is not one of 0..3 ({', '.join(LUNA_X4)})")


_RANDOM = {"crop": Crop, "flip": Flip, "croppad": CropPad, "cutout": CutOut, "resized_crop": ResizedCrop}
#: the transform names a config may use
AUGMENTATIONS = (*_RANDOM, "luna_x4")


@dataclass(frozen=True)
class Augmentation:
    """A parsed ``augment`` mapping: the random transforms in order and the fixed copies per sample."""

    steps: tuple[Any, ...]
    copies: int
    spec: dict[str, Any]

    def __call__(self, x: torch.Tensor, *, seed: int, epoch: int, index: int, copy: int = 0) -> torch.Tensor:
        """Sample ``x`` as training item ``index`` of ``epoch`` sees it (``copy`` of ``luna_x4``)."""
        if self.copies > 1:
            x = luna_x4(x, copy)
        if self.steps:
            g = sample_generator(seed, epoch, index)
            entry = tuple(x.shape[-2:])
            for step in self.steps:
                x = step(x, g, entry)
        return x

    def wrap(self, dataset: Dataset, seed: int) -> AugmentedSplit:
        return AugmentedSplit(dataset, self, seed)


def _number(where: str, value: Any, *, low: float, high: float = math.inf, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ConfigError(
            f"{where}: must be {'an integer' if integer else 'a number'} {bound}, got {value!r}"
        )
    return value


def _pair(where: str, value: Any, *, low: float, high: float = math.inf) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{where}: must be a pair [min, max], got {value!r}")
    a, b = (_number(f"{where}[{k}]", v, low=low, high=high) for k, v in enumerate(value))
    if a > b:
        raise ConfigError(f"{where}: min {a} exceeds max {b}")
    return float(a), float(b)


def _parse_step(name: str, params: Any, where: str) -> Any:
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: must be a mapping of parameters, got {params!r}")
    cls = _RANDOM[name]
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    values = dict(params)
    for key in ("size", "padding", "attempts"):
        if key in values and not (key == "size" and values[key] is None):
            values[key] = _number(
                f"{where}.{key}", values[key], low=0 if key == "padding" else 1, integer=True
            )
    for key in ("p", "prob"):
        if key in values:
            values[key] = _number(f"{where}.{key}", values[key], low=0, high=1)
    if "dim" in values and values["dim"] not in ("height", "width"):
        raise ConfigError(f"{where}.dim: must be 'height' or 'width', got {values['dim']!r}")
    if "area" in values:
        values["area"] = _number(f"{where}.area", values["area"], low=1e-9, high=1 - 1e-9)
    if "fill" in values and values["fill"] is not None:
        values["fill"] = _number(f"{where}.fill", values["fill"], low=-math.inf)
    for key, low, high in (
        ("scale", 1e-9, 1.0),
        ("ratio", 1e-9, math.inf),
        ("allowed_ratio", 1e-9, math.inf),
    ):
        if key in values:
            values[key] = _pair(f"{where}.{key}", values[key], low=low, high=high)
    if values.get("source_ratio") is not None:
        values["source_ratio"] = _number(f"{where}.source_ratio", values["source_ratio"], low=1e-9)
    for key in ("min_pad", "max_pad"):
        if key in values:
            values[key] = _number(f"{where}.{key}", values[key], low=0, high=1)
    if name == "croppad" and values.get("min_pad", CropPad.min_pad) > values.get("max_pad", CropPad.max_pad):
        raise ConfigError(f"{where}: min_pad exceeds max_pad")
    if "modes" in values:
        modes = values["modes"]
        bad = [m for m in modes if m not in PAD_MODES] if isinstance(modes, list) and modes else [modes]
        if bad:
            raise ConfigError(
                f"{where}.modes: {bad} not among the reproducible np.pad modes {list(PAD_MODES)} "
                "(a non-empty list)"
            )
        values["modes"] = tuple(modes)
    return cls(**values)


def parse_augment(mapping: Mapping[str, Any] | None, where: str = "augment") -> Augmentation | None:
    """The :class:`Augmentation` of a config's ``augment`` mapping (``where`` is its dotted key), or None for
    ``null`` / an empty mapping / ``luna_x4: false`` alone. Raises ConfigError naming the key: an unknown
    transform (with the known ones), an unknown parameter, a value out of range."""
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: must be a mapping of transforms or null, got {mapping!r}")
    unknown = [name for name in mapping if name not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"{where}: unknown augmentation(s) {unknown}; known: {list(AUGMENTATIONS)}")
    steps, copies = [], 1
    for name, params in mapping.items():
        if name == "luna_x4":
            if not isinstance(params, bool):
                raise ConfigError(f"{where}.luna_x4: must be true or false, got {params!r}")
            copies = 4 if params else 1
        else:
            steps.append(_parse_step(name, params, f"{where}.{name}"))
    if not steps and copies == 1:
        return None
    spec = {name: (dict(p) if isinstance(p, Mapping) else p) for name, p in mapping.items()}
    return Augmentation(tuple(steps), copies, spec)


def augment_problems(config: Mapping[str, Any]) -> list[str]:
    """The ``datasets.<name>.augment`` entries of a pipeline config that :func:`parse_augment` refuses, each
    naming its key (the schema checks names and types; this also checks ranges and their order)."""
    problems = []
    datasets = config.get("datasets") if isinstance(config, Mapping) else None
    for name, dataset in (datasets or {}).items():
        if isinstance(dataset, Mapping) and "augment" in dataset:
            try:
                parse_augment(dataset["augment"], where=f"datasets.{name}.augment")
            except ConfigError as err:
                problems.append(str(err))
    return problems


class AugmentedSplit(Dataset):
    """A training split as :func:`bidl.training.train` draws it: item ``j`` is the underlying item
    ``j % N`` (``N = len(dataset)``), copy ``j // N`` of ``luna_x4``, through the random transforms with
    the generator of ``(seed, epoch, j)``. Call :meth:`set_epoch` before each epoch (it is passed on to a
    dataset that has its own per-epoch draws, as Jester's frame sampling).

    Raises:
        ConfigError: on construction, when the dataset's samples are not float frames ``[T, C, H, W]``.
    """

    def __init__(self, dataset: Dataset, augmentation: Augmentation, seed: int, where: str = "augment"):
        self.dataset, self.augmentation, self.seed = dataset, augmentation, int(seed)
        self.epoch = 0
        self.n = len(dataset)
        if self.n and augmentation.steps:
            x = dataset[0][0]
            if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
                shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
                raise ConfigError(
                    f"{where}: {sorted(augmentation.spec)} transform float frames [T, C, H, W]; the samples "
                    f"of this dataset are {getattr(x, 'dtype', '')} {shape}"
                )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.n * self.augmentation.copies

    def __getitem__(self, j: int) -> tuple[torch.Tensor, Any]:
        if not 0 <= j < len(self):
            raise IndexError(f"index {j} out of range for {len(self)} samples")
        x, label = self.dataset[j % self.n]
        x = self.augmentation(x, seed=self.seed, epoch=self.epoch, index=j, copy=j // self.n)
        return x, label


def describe(mapping: Mapping[str, Any] | None) -> str:
    """One line for logs: ``crop(size=40, padding=4)``, ``luna_x4``, or ``none``."""
    if not mapping:
        return "none"
    parts = []
    for name, params in mapping.items():
        if isinstance(params, Mapping):
            parts.append(f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})")
        elif params:
            parts.append(name)
    return ", ".join(parts) or "none"
