"""Exceptions raised by bidl, each naming the file or key at fault."""

from __future__ import annotations

from pathlib import Path


class BidlError(Exception):
    """Base class of bidl's own errors."""


class DataFormatError(BidlError, ValueError):
    """A raw or cached data file is malformed.

    The message always starts with the path of the offending file.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DownloadError(BidlError, RuntimeError):
    """A download failed or its content did not verify."""


class ConfigError(BidlError, ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class SetupError(BidlError, RuntimeError):
    """The installation cannot run the pipeline as it is (e.g. an interpreter path Snakemake cannot quote)."""
