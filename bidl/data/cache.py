"""Reading the cached split files (``train.npz`` / ``test.npz``) that preprocessing writes, and the base
class of the per-dataset ``Dataset`` classes."""

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from bidl.errors import DataFormatError

__all__ = ["CachedSplit", "DenseSplit", "load_cache", "select_rows"]


def load_cache(path: str | Path, keys: Iterable[str], kind: str = "frame") -> dict[str, np.ndarray]:
    """Load the arrays ``keys`` of the cache ``path`` (no pickles).

    Raises:
        DataFormatError: naming ``path``, when the file is missing ("<kind> cache is missing"), lacks a key
            ("<kind> cache lacks [...]") or cannot be read (a truncated or corrupted archive).
    """
    path = Path(path)
    keys = list(keys)
    if not path.is_file():
        raise DataFormatError(path, f"{kind} cache is missing (run the preprocessing step)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = set(keys) - set(npz.files)
            if missing:
                raise DataFormatError(path, f"{kind} cache lacks {sorted(missing)}")
            return {key: npz[key] for key in keys}
    except DataFormatError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error
        raise DataFormatError(path, f"cannot read {kind} cache: {exc}") from exc


def select_rows(indices: Sequence[int] | None, n: int) -> np.ndarray:
    """``indices`` (negative ones counted from the end) as int64 rows of an ``n``-sample split; all if None.

    Raises:
        IndexError: an index outside ``-n .. n-1``.
    """
    if indices is None:
        return np.arange(n, dtype=np.int64)
    rows = np.asarray(indices, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"indices out of range for {n} samples")
    return np.where(rows < 0, rows + n, rows)


class CachedSplit(torch.utils.data.Dataset):
    """Base of the per-dataset classes: one cached split (``train.npz`` / ``test.npz``) held in memory.

    The cache holds ``labels`` (integer ``[N]``) and ``names`` (``[N]``) next to the dataset's own arrays
    (:attr:`KEYS`). The constructor loads them without pickles, lets the subclass check its arrays
    (:meth:`_validate` returns N), checks labels and names against N and the class count, selects the rows
    ``indices`` and hands the arrays to :meth:`_store`. ``dataset[i]`` is ``(x, label)`` with ``x`` from
    :meth:`_sample` passed through ``transform``.

    Args:
        path: the ``.npz`` cache.
        transform: optional callable applied to each sample tensor.
        indices: optional rows to expose (e.g. split.json's ``val.train_indices``).

    Attributes:
        labels: int64 ``[len]`` of the exposed rows; names: their sample names; rows: their rows in the file.

    Raises:
        DataFormatError: naming the file: missing, unreadable, wrong keys, dtypes or shapes, labels outside
            ``0 .. N_CLASSES - 1``.
        IndexError: ``indices`` outside the split.
    """

    #: arrays the cache must hold besides ``labels`` and ``names``
    KEYS: tuple[str, ...] = ()
    #: word for the cache in error messages ("frame cache is missing")
    KIND = "sample"
    #: labels lie in ``0 .. N_CLASSES - 1``; None: not checked here (class names live in split.json)
    N_CLASSES: int | None = None

    def __init__(
        self,
        path: str | Path,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        indices: Sequence[int] | None = None,
    ):
        self.path = Path(path)
        arrays = load_cache(self.path, (*self.KEYS, "labels", "names"), kind=self.KIND)
        labels, names = arrays["labels"], arrays["names"]
        n = self._validate(arrays)
        if labels.shape != (n,) or names.shape != (n,) or labels.dtype.kind not in "iu":
            raise DataFormatError(
                self.path, f"labels {labels.shape} / names {names.shape} do not match {n} samples"
            )
        if n and self.N_CLASSES is not None and (labels.min() < 0 or labels.max() >= self.N_CLASSES):
            raise DataFormatError(self.path, f"labels outside 0..{self.N_CLASSES - 1}")
        self.rows = select_rows(indices, n)
        self.labels = torch.from_numpy(labels[self.rows].astype(np.int64))
        self.names = names[self.rows].tolist()
        self.transform = transform
        self._store(arrays, self.rows)

    def _validate(self, arrays: dict[str, np.ndarray]) -> int:
        """Check the subclass's arrays (raising ``DataFormatError(self.path, ...)``); return N."""
        raise NotImplementedError

    def _store(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> None:
        """Keep what :meth:`_sample` needs (``rows`` are the exposed rows of the file)."""
        raise NotImplementedError

    def _sample(self, i: int) -> torch.Tensor:
        """The input tensor of exposed item ``i``, before ``transform``."""
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = i % len(self)
        x = self._sample(i)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])


class DenseSplit(CachedSplit):
    """A :class:`CachedSplit` whose samples are the rows of one dense array, ``KEYS[0]``.

    Subclasses set :attr:`DTYPE` and :attr:`LAYOUT` (the array's axes, e.g. ``"[N, T, 2, H, W]"``; its
    length sets the required ``ndim``, and a literal number in it the size of that axis) and, for integer
    images, :attr:`SCALE` (a sample is ``row.float() / SCALE``). The exposed rows are kept as one tensor under
    the array's own name (``dataset.frames``, ``dataset.cubes``).
    """

    DTYPE: type = np.uint8
    LAYOUT = "[N, ...]"
    SCALE = 1.0

    @property
    def _key(self) -> str:
        return self.KEYS[0]

    def _validate(self, arrays: dict[str, np.ndarray]) -> int:
        array = arrays[self._key]
        axes = self.LAYOUT.strip("[]").split(", ")
        fixed = all(a == str(n) for a, n in zip(axes, array.shape, strict=False) if a.isdigit())
        if array.dtype != self.DTYPE or array.ndim != len(axes) or not fixed:
            expected = f"{np.dtype(self.DTYPE).name} {self.LAYOUT}"
            raise DataFormatError(
                self.path, f"{self._key} must be {expected}, got {array.dtype} {array.shape}"
            )
        return array.shape[0]

    def _store(self, arrays: dict[str, np.ndarray], rows: np.ndarray) -> None:
        setattr(self, self._key, torch.from_numpy(np.ascontiguousarray(arrays[self._key][rows])))

    def _sample(self, i: int) -> torch.Tensor:
        x = getattr(self, self._key)[i].float()
        return x.div_(self.SCALE) if self.SCALE != 1.0 else x
