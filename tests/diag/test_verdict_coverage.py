"""Every verdict diagnose can give comes out of diagnose in some test.

The names are the keys of ``VERDICTS`` in ``diagnose_wording.j2``; what the tests produced is
what ``decide()`` returned during this session's tests of tests/diag (kept by
tests/diag/conftest.py). The count means something only when all of tests/diag ran and
passed, lab tests included (``scripts/test`` runs it so): otherwise the test is skipped and
says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parents[1] / "bot" / "render" / "templates"


def wording_verdicts() -> set[str]:
    module = Environment(loader=FileSystemLoader(TEMPLATES)).get_template("diagnose_wording.j2")
    return set(module.module.VERDICTS)


def test_the_wording_names_every_verdict() -> None:
    names = wording_verdicts()
    assert {"port25_blocked", "ses_suspended", "relay_tls_missing", "postmark_setup"} <= names


def test_every_verdict_is_produced_by_a_test(request: pytest.FixtureRequest, diag_run: Any) -> None:
    me = request.node
    others = [i for i in request.session.items if i.path.parent == HERE and i is not me]
    modules = {p.name for p in HERE.glob("test_*.py")} - {me.path.name}
    unselected = modules - {i.path.name for i in others}
    if diag_run.deselected or unselected or any("::" in a for a in request.config.args):
        pytest.skip("counted only in a session that runs every test of tests/diag")
    not_passed = [i.nodeid for i in others if diag_run.outcomes.get(i.nodeid) != "passed"]
    if not_passed:
        pytest.skip(f"{len(not_passed)} tests of tests/diag did not pass, e.g. {not_passed[0]}")
    wording = wording_verdicts()
    missing = sorted(wording - diag_run.produced)
    assert not missing, f"no test makes diagnose give these verdicts: {', '.join(missing)}"
    assert diag_run.produced <= wording, sorted(diag_run.produced - wording)
