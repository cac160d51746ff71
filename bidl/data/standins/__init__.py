"""Generated stand-ins of the datasets, written in each dataset's real raw layout and file formats.

One module per dataset (named as in :data:`bidl.data.catalog.DATASETS`): ``generate_standin(raw_root, *,
seed, ...)`` writes a complete raw copy (same arguments -> identical bytes) that the dataset's own reader
and ``preprocess`` handle as they handle the real release. A stand-in module imports its dataset module for
the layout (class names, file names, csv headers); the dataset module re-exports the stand-in's entry points
(:func:`lazy_exports`), so ``bidl.data.<dataset module>.generate_standin`` is the documented entry point.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(owner: str, standin: str, names: Collection[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the dataset module ``owner`` that gives ``names`` from the stand-in module
    ``bidl.data.standins.<standin>``, imported on first use.

    The stand-in module imports the dataset module (for its layout constants), so the dataset module cannot
    import the stand-in module while it is itself being imported; this defers that import to the first
    access of one of ``names``. Any other name raises :class:`AttributeError` as a missing attribute does.
    """
    module_name = f"bidl.data.standins.{standin}"

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(module_name), name)
        raise AttributeError(f"module {owner!r} has no attribute {name!r}")

    return __getattr__
