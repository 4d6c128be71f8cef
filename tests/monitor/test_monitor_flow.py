"""The whole alert lifecycle in one process: simulated hosts over real SSH, the real
database (SQLite and PostgreSQL), Slack through the fake Web API server.

warning at 100 deferred, critical at 200, clear under 80; cooldown 5 s (long enough for a
loaded machine to draw the resolve's chart within it); polls every
0.3 s. The queue goes 10 -> 120 (opens one root) -> 250 (root edited, "now critical" in the
thread) -> 190 (still critical: hysteresis) -> 90 (back to warning, still open) -> 10
(resolved, chart) -> 120 within the cooldown (reopened in the same thread) -> 10 -> after
the cooldown 120 (a new root).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.db.models import Incident, QueueSample
from bot.db.session import make_engine, make_sessionmaker
from bot.inventory import Inventory, parse_config
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.settings import Settings
from bot.slack.alerts import SlackNotifier
from bot.slack.client import make_client
from helpers.fakes import FakeSlack
from helpers.monitoring import CHANNEL, MONITOR, notes, roots, running, wait_until
from helpers.simhosts import farm


async def test_incident_lifecycle_in_slack(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack, farm(tmp_path, 1) as world:
        async with running(world, slack, db_url) as monitor:
            await wait_until(lambda: len(world.polls.get("h00", [])) >= 3)
            assert roots(slack) == []  # 10 deferred: nothing to say

            world.deferred["h00"] = 120
            await wait_until(lambda: len(roots(slack)) == 1)
            root = roots(slack)[0]
            ts = slack.messages_in(CHANNEL)[0]["ts"]
            assert "WARNING" in root.args["text"]
            assert "h00" in root.args["text"]
            actions = next(b for b in root.args["blocks"] if b["type"] == "actions")
            values = {e["text"]["text"]: e["value"] for e in actions["elements"]}
            flush = next(e for e in actions["elements"] if e["text"]["text"] == "Flush")
            assert flush["confirm"]["confirm"]["text"] == "Flush"  # one tap is not enough
            incident = values["Acknowledge"]
            # two thirds of the simulated deferrals are "Connection refused"
            assert values["Purge…"] == f'purge h00 reason=connection_refused why="alert {incident}"'
            assert values["Snooze 1h"] == incident
            await slack.wait_for("files.completeUploadExternal")  # the chart at the opening

            world.deferred["h00"] = 250
            await wait_until(lambda: any("critical" in n for n in notes(slack, ts)))
            # root edits are coalesced (edit_gap): the root catches up within a few seconds
            await wait_until(lambda: "CRITICAL" in slack.messages[(CHANNEL, ts)]["text"])

            world.deferred["h00"] = 190  # under critical, above its clear level (180): holds
            polls = len(world.polls["h00"])
            await wait_until(lambda: len(world.polls["h00"]) >= polls + 4)
            assert len(notes(slack, ts)) == 1
            world.deferred["h00"] = 90  # back to warning; above clear (80): stays open
            await wait_until(lambda: any("Back to warning" in n for n in notes(slack, ts)))
            polls = len(world.polls["h00"])
            await wait_until(lambda: len(world.polls["h00"]) >= polls + 4)
            assert len(notes(slack, ts)) == 2
            assert len(roots(slack)) == 1

            world.deferred["h00"] = 10
            await wait_until(lambda: any("Resolved" in n for n in notes(slack, ts)))
            await wait_until(lambda: "RESOLVED" in slack.messages[(CHANNEL, ts)]["text"])
            await slack.wait_for("files.completeUploadExternal", count=2)
            png = [f for f in slack.files.values() if f.thread_ts == ts][-1].content
            assert png is not None
            assert png.startswith(b"\x89PNG")

            world.deferred["h00"] = 120  # within the cooldown: the same thread
            await wait_until(lambda: any("Reopened" in n for n in notes(slack, ts)))
            assert len(roots(slack)) == 1
            world.deferred["h00"] = 10
            await wait_until(lambda: sum("Resolved" in n for n in notes(slack, ts)) == 2)
            await asyncio.sleep(5.1)  # past the cooldown: a new incident, a new root
            world.deferred["h00"] = 120
            await wait_until(lambda: len(roots(slack)) == 2)

            metrics = monitor.metrics.render().decode()
            assert 'mailqbot_queue_messages{host="h00",queue="deferred"} 120.0' in metrics

            async with monitor.services.sessions() as session:
                rows = (await session.scalars(select(Incident).order_by(Incident.id))).all()
                samples = await session.scalar(select(func.count()).select_from(QueueSample))
        assert [(r.state, r.peak) for r in rows] == [("resolved", 250.0), ("open", 120.0)]
        assert rows[0].root_ts == ts
        assert rows[1].root_ts != ts
        assert samples is not None
        assert samples >= 20


async def test_failed_polls_in_a_row_survive_a_takeover(tmp_path: Path, db_url: str) -> None:
    """Process a counts the failures of a dead host and stops; b takes the host over and
    goes on counting from the sample history instead of starting again at one."""
    rules = MONITOR + "unreachable = { warning = 2, critical = 100, clear = 1 }\n"
    async with FakeSlack() as slack, farm(tmp_path, 1) as world:
        world.down.add("h00")
        async with running(world, slack, db_url, "a", rules) as first:
            await wait_until(lambda: len(roots(slack)) == 1)  # two failures: warning
            await wait_until(lambda: first.failures.get("h00", 0) >= 4)
        async with running(world, slack, db_url, "b", rules) as second:
            await wait_until(lambda: "h00" in second.failures)
        engine = make_engine(db_url)
        try:
            async with make_sessionmaker(engine)() as session:
                failed = select(func.count()).where(QueueSample.ok.is_(False))
                by_a = await session.scalar(failed.where(QueueSample.replica == "a"))
                by_all = await session.scalar(failed)
                # unreachable is a grouped rule: the host's incident is in a group incident
                group, incident = (
                    await session.scalars(select(Incident).order_by(Incident.id))
                ).all()
        finally:
            await engine.dispose()
        assert by_a is not None
        assert by_a >= 4
        assert second.failures["h00"] == by_all  # b went on from a's count: every poll failed
        assert (incident.kind, incident.state, incident.value) == ("unreachable", "open", by_all)
        assert (group.host, group.group_key, group.value) == ("*", "unreachable", 1.0)
        assert incident.group_id == group.id
        assert "Unreachable: 1 host" in roots(slack)[0].args["text"]
        assert len(roots(slack)) == 1  # the same incident, no second root


async def test_a_reloaded_inventory_is_polled_without_a_restart(
    tmp_path: Path, db_url: str
) -> None:
    """The reload swaps services.inventory (bot.app.reload); the monitor follows it at its
    next tick: an added host is polled, a removed one no more."""
    async with FakeSlack() as slack, farm(tmp_path, 2) as world:
        full = Inventory(parse_config(world.config(MONITOR), "<test>"))
        only = {name: Inventory(full.config.model_copy(update={"hosts": [entry]}))
                for entry in full.config.hosts for name in [entry.name]}  # fmt: skip
        settings = Settings(DATABASE_URL=db_url, SLACK_API_URL=slack.api_url,
                            SLACK_BOT_TOKEN="xoxb-test")  # fmt: skip
        async with open_services(settings, only["h00"]) as services:
            live = LiveServices(services)
            monitor = Monitor(live, SlackNotifier(make_client(settings), CHANNEL),
                              Metrics(services.sessions))  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(monitor.run(stop))
            try:
                await wait_until(lambda: len(world.polls.get("h00", [])) >= 2)
                assert "h01" not in world.polls
                live.update(inventory=full)  # what a reload does
                await wait_until(lambda: len(world.polls.get("h01", [])) >= 2)
                live.update(inventory=only["h01"])
                await asyncio.sleep(0.5)  # a poll of h00 may have been under way
                before = len(world.polls["h00"])
                await asyncio.sleep(1.0)  # about three intervals
                assert len(world.polls["h00"]) == before
                assert len(world.polls["h01"]) >= 4
            finally:
                stop.set()
                await task
