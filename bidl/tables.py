"""Rendering measured rows as Markdown and CSV tables (the pipeline's ``results/<preset>/tables/``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["to_csv", "to_markdown"]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(
    title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()
) -> str:
    """``# title``, the ``notes`` lines, then a pipe table of ``rows`` in the order of ``columns``."""
    lines = [f"# {title}", ""]
    if notes:
        lines += [*notes, ""]
    lines += [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as CSV with a header line of ``columns``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: row[c] for c in columns} for row in rows)
    return buffer.getvalue()
