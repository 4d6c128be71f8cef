"""The verdicts the tests of tests/diag produce, for test_verdict_coverage.py.

``decide`` (every verdict diagnose gives comes from it) is wrapped once, before the test
modules import it: the wrapper returns what ``decide`` returns and keeps the kinds. Each
test's outcome is kept too, and the coverage test runs after every other test of the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.diag import collect, verdicts
from bot.diag.model import Evidence, Verdict

HERE = Path(__file__).resolve().parent
COVERAGE_TEST = "test_verdict_coverage.py"


@dataclass
class DiagRun:
    """What this session's tests of tests/diag did."""

    produced: set[str] = field(default_factory=set)  # verdict kinds decide() returned
    outcomes: dict[str, str] = field(default_factory=dict)  # nodeid: passed, failed, skipped
    deselected: bool = False  # -k, -m or a hook left some tests of tests/diag out


RUN = DiagRun()
_decide = verdicts.decide


def _recording_decide(ev: Evidence) -> list[Verdict]:
    found = _decide(ev)
    RUN.produced.update(v.kind for v in found)
    return found


verdicts.decide = _recording_decide  # type: ignore[assignment]
collect.decide = _recording_decide  # type: ignore[attr-defined]


def _in_diag(item: pytest.Item) -> bool:
    return HERE in item.path.parents


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if any(_in_diag(item) for item in items):
        RUN.deselected = True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The coverage test goes last, after whatever order other plugins chose."""
    last = [item for item in items if item.path.name == COVERAGE_TEST]
    items[:] = [item for item in items if item.path.name != COVERAGE_TEST] + last


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome != "passed":  # a failed or skipped setup, call or teardown
        RUN.outcomes[report.nodeid] = report.outcome
    elif report.when == "call":
        RUN.outcomes.setdefault(report.nodeid, "passed")


@pytest.fixture
def diag_run() -> DiagRun:
    return RUN
