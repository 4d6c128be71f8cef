"""Every failed poll is logged once, with its host, a request id and the reason; a good
poll logs no warning, and /healthz's poll age follows the last good poll."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.inventory import Inventory, parse_config
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.settings import Settings
from bot.slack.alerts import SlackNotifier
from bot.slack.client import make_client
from helpers.fakes import FakeSlack
from helpers.simhosts import farm

MONITOR = """[monitor]
interval = "300ms"
jitter = 0
tick = "100ms"
[monitor.rules]
deferred = { warning = 100, critical = 200, clear = 80 }
"""


async def test_each_failed_poll_is_logged_once(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeSlack() as slack, farm(tmp_path, 2) as world:
        world.down.add("h01")
        settings = Settings(
            DATABASE_URL=db_url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test"
        )
        inventory = Inventory(parse_config(world.config(MONITOR), "<test>"))
        async with open_services(settings, inventory) as services:
            monitor = Monitor(
                LiveServices(services),
                SlackNotifier(make_client(settings), "C0ALERTS"),
                Metrics(services.sessions),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(monitor.run(stop))
            async with asyncio.timeout(10):
                while len(world.polls.get("h00", [])) < 3 or monitor.failures.get("h01", 0) < 3:
                    await asyncio.sleep(0.05)
            stop.set()
            await task
        assert monitor.last_success is not None  # h00's polls
    failed = [r for r in caplog.records if r.getMessage().startswith("poll failed")]
    assert {r.host for r in failed} == {"h01"}  # type: ignore[attr-defined]
    assert len(failed) == monitor.failures["h01"]  # once per failed poll, no more
    ids = [re.search(r"request_id=(\S+)", r.getMessage())[1] for r in failed]  # type: ignore[index]
    assert len(set(ids)) == len(ids)
    for record in failed:
        assert record.levelno == logging.WARNING
        assert "mail system is down" in record.reason  # type: ignore[attr-defined]
        assert "reason=" in record.getMessage()
