"""A monitor running in this process over simulated hosts, posting to the fake Slack: its
rules (``MONITOR``), its alert channel, what it posted there, and ``wait_until``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.inventory import Inventory, parse_config
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.settings import Settings
from bot.slack.alerts import SlackNotifier
from bot.slack.client import make_client
from helpers.fakes import Call, FakeSlack
from helpers.simhosts import Farm

CHANNEL = "C0ALERTS"
MONITOR = """[monitor]
interval = "300ms"
jitter = 0
tick = "100ms"
cooldown = "5s"
[monitor.budget]
per_minute = 600
burst = 20
edit_gap = "200ms"
[monitor.rules]
deferred = { warning = 100, critical = 200, clear = 80 }
"""


def roots(slack: FakeSlack) -> list[Call]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == CHANNEL and not c.args.get("thread_ts")
    ]


def notes(slack: FakeSlack, ts: str) -> list[str]:
    return [
        c.args["text"] for c in slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts
    ]


@asynccontextmanager
async def running(
    world: Farm, slack: FakeSlack, db_url: str, replica: str = "test-replica", rules: str = MONITOR
) -> AsyncIterator[Monitor]:
    settings = Settings(
        DATABASE_URL=db_url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test"
    )
    inventory = Inventory(parse_config(world.config(rules), "<test>"))
    async with open_services(settings, inventory) as services:
        notifier = SlackNotifier(make_client(settings), CHANNEL)
        live = LiveServices(replace(services, replica=replica))
        monitor = Monitor(live, notifier, Metrics(services.sessions))
        stop = asyncio.Event()
        task = asyncio.create_task(monitor.run(stop))
        try:
            yield monitor
        finally:
            stop.set()
            await task


async def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)
