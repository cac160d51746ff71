"""Shared test machinery: the fault-injection record behind the faults table.

Tests marked ``fault`` inject one fault each (a killed job, a broken download, a truncated or wrong-typed
file, a mistyped config key, a diverging loss) and call the ``fault_log`` fixture with what they did and what
happened. ``pytest -m fault --fault-table=results/faults.md`` runs that suite alone and writes the table of
every fault tried, its outcome as observed (the error's type and message, with temporary paths shortened to
``<tmp>``) and whether the test passed; the table in docs/reliability.md is that file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

_RECORDS: list[_Fault] = []
_OUTCOMES: dict[str, str] = {}


@dataclass
class _Fault:
    area: str
    fault: str
    outcome: str
    test: str


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fault-table",
        metavar="PATH",
        default=None,
        help="write the markdown table of the injected faults (tests marked 'fault') and their outcomes",
    )


def _describe(outcome: object, tmp_roots: list[str]) -> str:
    if isinstance(outcome, BaseException):
        outcome = f"{type(outcome).__name__}: {outcome}"
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(outcome)).split())  # without terminal colours
    for root in tmp_roots:
        text = text.replace(root, "<tmp>")
    text = re.sub(r"<tmp>/[^\s:'\"]*?/(?=[^/\s]+(?:[\s:'\"]|$))", "<tmp>/…/", text)
    return text if len(text) <= 300 else text[:297] + "..."


@pytest.fixture
def fault_log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``fault_log(area, fault, outcome)``: record an injected fault and what happened (exception or text)."""
    if request.node.get_closest_marker("fault") is None:
        raise pytest.UsageError(f"{request.node.nodeid} records a fault but is not marked 'fault'")
    roots = [str(tmp_path_factory.getbasetemp())]

    def record(area: str, fault: str, outcome: object) -> None:
        _RECORDS.append(_Fault(area, fault, _describe(outcome, roots), request.node.nodeid))

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _OUTCOMES[item.nodeid] = report.outcome
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--fault-table")
    if not path or not _RECORDS:
        return
    lines = [
        "| # | area | fault injected | what happened | test |",
        "|---|---|---|---|---|",
    ]
    for number, record in enumerate(_RECORDS, 1):
        result = _OUTCOMES.get(record.test, "not run")
        name = record.test.split("::", 1)[-1]
        verdict = "" if result == "passed" else f" **{result.upper()}**"
        cells = [str(number), record.area, record.fault, record.outcome, f"`{name}`{verdict}"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    failed = sum(_OUTCOMES.get(r.test) != "passed" for r in _RECORDS)
    tests = len({r.test for r in _RECORDS})
    lines += ["", f"{len(_RECORDS)} faults injected by {tests} tests; {failed} not handled as expected.", ""]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(target)
