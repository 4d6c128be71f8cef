"""`/mailq diagnose` through the pipeline: rendering, buttons, arguments, and the budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.app.pipeline import Outcome, handle
from bot.app.runtime import open_services
from bot.context import Request
from bot.settings import Settings
from helpers.diaglab import LAB_TOML

pytestmark = pytest.mark.lab

BLACKHOLE_HOST = """
[[hosts]]
name = "hole"
address = "127.0.0.4"  # the lab's black hole: SYNs are dropped
port = 25
"""


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailqbot.toml"
    path.write_text(text)
    return path


async def run(
    config: Path, db_url: str, text: str, user: str = "console:test", source: str = "console"
) -> Outcome:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=str(config))
    async with open_services(settings) as services:
        return await handle(Request(source, user, text, team_id="T0LAB"), services)


async def test_diagnose_renders_verdicts_with_buttons(db_url: str, lab: object) -> None:
    outcome = await run(LAB_TOML, db_url, "diagnose lab refused.test")
    assert outcome.ok, outcome.reply.text
    text = outcome.reply.text
    assert text.startswith("Diagnosis of lab for refused.test:")
    assert "refused.test is down or refusing connections" in text
    assert "Run: /mailq flush lab domain=refused.test" in text
    assert "smtp_connect_timeout = 5s; recommended 10s-60s" in text
    buttons = [e for b in outcome.reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert {"action_id": "mailq_run_thread", "value": "flush lab domain=refused.test"}.items() <= {
        k: v for b in buttons for k, v in b.items() if b["value"].endswith("refused.test")
    }.items()
    assert len(json.dumps(outcome.reply.blocks)) < 40_000


async def test_a_viewer_may_diagnose_and_bad_domains_are_refused(db_url: str, lab: object) -> None:
    outcome = await run(LAB_TOML, db_url, "diagnose lab", "U0VIEWER", "slack")
    assert outcome.ok, outcome.reply.text
    refused = await run(LAB_TOML, db_url, "diagnose lab '$(id);x.example'", "U0VIEWER", "slack")
    assert not refused.ok
    assert "is not a valid domain name" in refused.reply.text
    option = await run(LAB_TOML, db_url, "diagnose lab -oProxyCommand=id", "U0VIEWER", "slack")
    assert not option.ok
    assert "unrecognized arguments" in option.reply.text
    stranger = await run(LAB_TOML, db_url, "diagnose lab", "U0STRANGER", "slack")
    assert not stranger.ok
    assert "You may not run `diagnose`" in stranger.reply.text


async def test_black_holed_host_finishes_within_budget(
    db_url: str, lab: object, tmp_path: Path
) -> None:
    text = LAB_TOML.read_text().replace('check_timeout = "6s"', 'check_timeout = "2s"')
    text = text.replace('budget = "15s"', 'budget = "5s"') + BLACKHOLE_HOST
    config = config_file(tmp_path, text)
    started = time.monotonic()
    outcome = await run(config, db_url, "diagnose hole blackhole.test")
    elapsed = time.monotonic() - started
    assert outcome.ok, outcome.reply.text
    assert elapsed < 5.0 + 2.5, elapsed  # the budget, plus opening the database
    reply = outcome.reply.text
    late = reply.split("Timed out (each check may take 2.0 s): ", 1)[1].split("\n", 1)[0]
    for check in (
        "settings (postconf -x) (timed out)",
        "queue reasons (postqueue) (",
        "blackhole.test from the host (posttls-finger, host resolver) (timed out)",
    ):
        assert check in late, late
    assert "ok          MX of blackhole.test (bot DNS)" in reply  # bot-side checks still answer


async def test_a_host_summary_offers_a_diagnose_button(db_url: str, lab: object) -> None:
    outcome = await run(LAB_TOML, db_url, "summary lab")
    assert outcome.ok, outcome.reply.text
    buttons = [e for b in outcome.reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert {(b["action_id"], b["value"]) for b in buttons} >= {("mailq_run_thread", "diagnose lab")}
