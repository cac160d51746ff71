"""Reading the cached split files (``train.npz`` / ``test.npz``) that preprocessing writes."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bidl.errors import DataFormatError

__all__ = ["load_cache"]


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
