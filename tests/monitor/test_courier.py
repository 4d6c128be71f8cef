"""The per-channel budget, through the real Slack notifier and the fake Web API server:
posts at most one a second, notes past the budget folded into an edit of their root (and
counted, never dropped silently), a resolve waits for its token, edits coalesced."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.monitor.alert import Alert, GroupAlert
from bot.monitor.config import Budget
from bot.monitor.courier import EDIT_BURST, Courier, Kind
from bot.settings import Settings
from bot.slack.alerts import SlackNotifier
from bot.slack.client import make_client
from bot.stores.budget import Bucket, key, reserve
from helpers.fakes import FakeSlack

CHANNEL = "C0ALERTS"


def an_alert() -> Alert:
    return Alert(
        7, "mx1", "deferred", "open", "warning", 120.0, 120.0, 100.0,
        {"by_class": {}, "error": None}, 0.0, 0.0, None, None, None, None, None, None,
    )  # fmt: skip


async def test_the_budget_folds_notes_into_the_root_and_counts_them(tmp_path: Path) -> None:
    async with FakeSlack() as slack:
        settings = Settings(
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
            SLACK_API_URL=slack.api_url,
            SLACK_BOT_TOKEN="xoxb-test",
        )
        notifier = SlackNotifier(make_client(settings), CHANNEL)
        courier = Courier(notifier, Budget(per_minute=12, burst=3, gap=1.0, edit_gap=0.5))
        ref = await courier.root(CHANNEL, an_alert())
        assert ref is not None
        posted = replace(an_alert(), channel_id=ref[0], root_ts=ref[1], event="grew")

        async def latest() -> Alert:
            return replace(posted, value=300.0, peak=300.0)

        sent = [await courier.note(posted, latest) for _ in range(6)]
        assert sent.count(True) == 2  # the root took the first of 3 tokens
        assert courier.counters.folded == 4
        await courier.drain()
        root = slack.messages[(CHANNEL, ref[1])]
        assert "300" in root["text"]  # the latest numbers, in the root
        assert "4 update(s) folded into this message" in json.dumps(root["blocks"])
        assert 1 <= len(slack.calls_to("chat.update")) <= 2  # four folds, coalesced

        started = time.monotonic()
        resolved = replace(posted, event="resolved", state="resolved", resolved_at=1.0)
        assert await courier.note(resolved, latest, wait=True)  # waits for its token
        assert time.monotonic() - started >= 0.5
        posts = [c.time for c in slack.calls_to("chat.postMessage")]
        assert len(posts) == 4
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(posts))  # 1 a second at most
        assert courier.counters.posted == 4


class Timed(SlackNotifier):
    """The Slack notifier, noting when each thread post starts (the courier's decision;
    when it reaches Slack also depends on each HTTP request's own connection set-up)."""

    starts: ClassVar[list[float]] = []

    async def post_thread(self, alert: Alert | GroupAlert) -> None:
        self.starts.append(time.time())
        await super().post_thread(alert)


async def test_two_replicas_share_one_channel_budget(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Two processes' couriers post in one channel: the database's bucket holds them both,
    so the channel gets ``burst`` posts at one a second, not twice that; the rest fold."""
    budget = Budget(per_minute=12, burst=3, gap=1.0, edit_gap=0.5)
    bucket = Bucket(budget.burst, budget.per_minute / 60, budget.gap)

    slots: list[float] = []

    async def shared(channel: str, kind: Kind, wait: bool) -> float | None:
        now = time.time()
        if kind == "edit":  # the folds' root edits: their own budget
            edits = Bucket(EDIT_BURST, budget.edits_per_minute / 60, 0.0)
            return await reserve(sessions, key(channel, kind), edits, now, wait)
        delay = await reserve(sessions, key(channel, kind), bucket, now, wait)
        if delay is not None:
            slots.append(now + delay)
        return delay

    async with FakeSlack() as slack:
        settings = Settings(SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test")
        Timed.starts = []
        replicas = [
            Courier(Timed(make_client(settings), CHANNEL), budget, shared=shared) for _ in range(2)
        ]
        root = slack.seed_message(CHANNEL, "WARNING mx1: Deferred messages 120")
        posted = replace(an_alert(), channel_id=CHANNEL, root_ts=root, event="grew")

        async def latest() -> Alert:
            return posted

        sent = await asyncio.gather(*(c.note(posted, latest) for c in replicas for _ in range(3)))
        assert sent.count(True) == 3  # the channel's burst, whichever replica took it
        assert sum(c.counters.folded for c in replicas) == 3  # the rest folded, counted
        for courier in replicas:
            await courier.drain()
        assert len(slack.calls_to("chat.postMessage")) == 3
        assert len(Timed.starts) == 3
        # The slots the database handed out are a second apart across both replicas; a
        # post starts at its slot or later (after the database's answer), never earlier.
        slot_gaps = [b - a for a, b in itertools.pairwise(sorted(slots))]
        assert len(slots) == 3, slots
        assert min(slot_gaps) >= 1.0 - 1e-6, slot_gaps
        gaps = [b - a for a, b in itertools.pairwise(sorted(Timed.starts))]
        assert min(gaps) >= 0.9, gaps


async def test_without_the_database_a_replica_keeps_its_own_budget(tmp_path: Path) -> None:
    async def down(channel: str, kind: Kind, wait: bool) -> float | None:
        raise ConnectionRefusedError("database down")

    async with FakeSlack() as slack:
        settings = Settings(SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test")
        budget = Budget(per_minute=12, burst=2, gap=1.0, edit_gap=0.5)
        courier = Courier(SlackNotifier(make_client(settings), CHANNEL), budget, shared=down)
        root = slack.seed_message(CHANNEL, "WARNING mx1: Deferred messages 120")
        posted = replace(an_alert(), channel_id=CHANNEL, root_ts=root, event="grew")

        async def latest() -> Alert:
            return posted

        sent = [await courier.note(posted, latest) for _ in range(3)]
        assert sent == [True, True, False]  # this process's own bucket of 2
        await courier.drain()


class TimedEdits(SlackNotifier):
    """The Slack notifier, noting when each root edit starts."""

    starts: ClassVar[list[float]] = []

    async def edit_root(self, alert: Alert | GroupAlert) -> None:
        self.starts.append(time.time())
        await super().edit_root(alert)


async def test_two_replicas_share_one_channel_edit_rate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Root edits are paced by the channel's ``edits_per_minute`` in the database, which
    both replicas take from: 2 x 8 edits of different roots at once make one burst of
    ``EDIT_BURST``, then one edit per 0.1 s, not two bursts."""
    budget = Budget(per_minute=12, burst=3, gap=1.0, edit_gap=0.5, edits_per_minute=600)
    edits = Bucket(EDIT_BURST, budget.edits_per_minute / 60, 0.0)

    async def shared(channel: str, kind: Kind, wait: bool) -> float | None:
        assert kind == "edit"
        return await reserve(sessions, key(channel, kind), edits, time.time(), wait)

    async with FakeSlack() as slack:
        settings = Settings(SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test")
        TimedEdits.starts = []
        replicas = [
            Courier(TimedEdits(make_client(settings), CHANNEL), budget, shared=shared)
            for _ in range(2)
        ]
        alerts = []
        for n in range(16):
            root = slack.seed_message(CHANNEL, f"WARNING mx{n}: Deferred messages 120")
            alerts.append(replace(an_alert(), id=n, channel_id=CHANNEL, root_ts=root))

        def latest(alert: Alert):  # type: ignore[no-untyped-def]
            async def read() -> Alert:
                return alert

            return read

        for n, alert in enumerate(alerts):
            replicas[n % 2].edit(alert, latest(alert))
        for courier in replicas:
            await courier.drain()
        assert sum(c.counters.edits for c in replicas) == 16
        assert len(slack.calls_to("chat.update")) == 16
        starts = sorted(TimedEdits.starts)
        # past the shared burst, the k-th edit waits its 0.1 s turns, whichever replica
        # sent it: a bucket per replica would have sent all 16 at once
        assert starts[-1] - starts[0] >= (16 - EDIT_BURST) * 0.1 - 0.05, starts
        assert starts[EDIT_BURST] - starts[0] >= 0.05, starts
