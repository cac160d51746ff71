"""Where raw data comes from: the registry of real sources, verified downloads and Zenodo's checksums.

- :mod:`~bidl.data.sources.registry`: every dataset's named :class:`Source` entries (files, mirror URLs,
  checksums) and LUNA16's recorded checksums; its public names are importable from this package.
- :mod:`~bidl.data.sources.download`: resumable, verified downloads and safe archive extraction
  (``python -m bidl.data.sources.download`` checks and writes LUNA16's recorded checksums).
- :mod:`~bidl.data.sources.zenodo`: the URLs and checksums of files of a Zenodo record.

Stand-ins, generated in place of a source, are in :mod:`bidl.data.standins`.
"""

from bidl.data.sources import registry
from bidl.data.sources.registry import *  # noqa: F403  (the registry's public names, listed once there)

__all__ = list(registry.__all__)
