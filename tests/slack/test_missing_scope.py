"""A scope missing at run time: Slack answers ``missing_scope`` with the scope it needs; the
person who asked is told which scope, and the log names it (no crash reference only)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.inventory import Access, Grant
from helpers.fakes import FakeSlack
from helpers.refusal_cases import slack_world

ACCESS = Access(team_ids=["T0LAB"], grants=[Grant(role="viewer", members=["U0VIEWER"])])


async def test_the_missing_scope_is_named(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeSlack() as slack, slack_world(db_url, tmp_path, ACCESS, slack) as world:
        slack.fail_next(
            "chat.postMessage", status=200, error="missing_scope", needed="chat:write",
            provided="commands",
        )  # fmt: skip
        reply = await world.ephemeral(await world.slash("summary mx1"))
    text = str(reply["text"])
    assert "Slack refused mailqbot's chat.postMessage call: the app lacks the `chat:write` " in text
    assert "add it under OAuth & Permissions and reinstall the app" in text
    (logged,) = [r for r in caplog.records if "missing scope" in r.getMessage()]
    assert logged.levelno == logging.ERROR
    expected = "Slack refused chat.postMessage: missing scope chat:write (reference "
    assert logged.getMessage().startswith(expected)
    assert logged.exc_info is None  # one line, no traceback
