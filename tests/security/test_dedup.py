"""Slack deliveries are handled once: a replayed signed request, a repeated button payload,
an Events API retry and a redelivered Socket Mode payload each run at most once (and are
still acknowledged), on SQLite and PostgreSQL, across replicas; old keys are pruned."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import AuditEvent, CommandRun, SlackDelivery
from bot.db.session import make_engine, make_sessionmaker
from bot.inventory import Access, Grant
from bot.slack.dedup import Deduplicator, delivery_key
from bot.slack.http import AckFirstSocketModeHandler
from helpers.fakes import FakeSlack, block_actions_body, slash_command_body, slash_command_payload
from helpers.refusal_cases import CHANNEL, TEAM, SlackWorld, slack_world

ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="viewer", members=["U0VIEWER"])])
TRIGGER = "1764300000.4242.0123456789abcdef0123456789abcdef"


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


def final(call: Any) -> bool:
    return "blocks" in call.args


async def counts(world: SlackWorld) -> tuple[int, int, int]:
    async with world.sessions() as session:
        runs = await session.scalar(select(func.count()).select_from(CommandRun))
        events = await session.scalar(select(func.count()).select_from(AuditEvent))
        seen = await session.scalar(select(func.count()).select_from(SlackDelivery))
    return int(runs or 0), int(events or 0), int(seen or 0)


def queue_reads(world: SlackWorld) -> int:
    return sum(c.endswith("postqueue -j") for c in world.host_commands())


async def settle(world: SlackWorld) -> None:
    """Wait for the result, then long enough for a duplicate run to have shown itself."""
    await world.slack.wait_for("chat.update", timeout=30, predicate=final)
    await asyncio.sleep(0.7)


async def test_replayed_slash_command_runs_once(world: SlackWorld, slack: FakeSlack) -> None:
    body = slash_command_body(
        "summary mx1", user_id="U0VIEWER", team_id=TEAM, channel_id=CHANNEL,
        response_url=slack.response_url("s"), trigger_id=TRIGGER,
    )  # fmt: skip
    assert await world.post(body) == 200
    assert await world.post(body) == 200  # the same signed bytes: acknowledged, dropped
    await settle(world)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len([c for c in slack.calls_to("chat.update") if final(c)]) == 1
    assert slack.responses == []
    assert await counts(world) == (1, 1, 1)
    assert queue_reads(world) == 1


async def test_repeated_button_payload_runs_once(world: SlackWorld, slack: FakeSlack) -> None:
    ts = slack.seed_message(CHANNEL, "an earlier answer")
    body = block_actions_body(
        "mailq_run_thread", "summary mx1", user_id="U0VIEWER", team_id=TEAM,
        channel_id=CHANNEL, message_ts=ts, response_url=slack.response_url("b"),
    )  # fmt: skip
    statuses = await asyncio.gather(world.post(body), world.post(body), world.post(body))
    assert statuses == [200, 200, 200]
    await settle(world)
    (posted,) = slack.calls_to("chat.postMessage")
    assert posted.args["thread_ts"] == ts
    assert await counts(world) == (1, 1, 1)
    assert queue_reads(world) == 1


async def test_distinct_deliveries_all_run(world: SlackWorld, slack: FakeSlack) -> None:
    """Two people (or one person twice) typing the same command are two requests."""
    for name in ("one", "two"):
        body = slash_command_body(
            "summary mx1", team_id=TEAM, channel_id=CHANNEL, response_url=slack.response_url(name)
        )
        assert await world.post(body) == 200
    await slack.wait_for("chat.update", count=2, timeout=30, predicate=final)
    assert await counts(world) == (2, 2, 2)


def event_body(event_id: str) -> bytes:
    return json.dumps(
        {
            "token": "fake-verification-token", "team_id": TEAM, "api_app_id": "A0LAB",
            "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
            "event": {
                "type": "app_mention", "user": "U0VIEWER", "text": "<@U0BOT> hello",
                "ts": "1764300000.000900", "channel": CHANNEL, "event_ts": "1764300000.000900",
            },
        }
    ).encode()  # fmt: skip


async def test_events_api_retry_is_dropped(world: SlackWorld) -> None:
    seen: list[str] = []

    async def on_mention(event: dict[str, Any]) -> None:
        seen.append(event["text"])

    world.app.event("app_mention")(on_mention)
    json_type = {"Content-Type": "application/json"}
    assert await world.post(event_body("Ev0DEDUP1"), json_type) == 200
    for retry in ("1", "2"):  # Slack's retries carry the same event_id
        headers = json_type | {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "timeout"}
        assert await world.post(event_body("Ev0DEDUP1"), headers) == 200
    assert await world.post(event_body("Ev0OTHER2"), json_type) == 200
    await asyncio.sleep(0.5)
    assert seen == ["<@U0BOT> hello", "<@U0BOT> hello"]  # Ev0DEDUP1 once, Ev0OTHER2 once


async def test_socket_mode_redelivery_runs_once(world: SlackWorld, slack: FakeSlack) -> None:
    handler = AckFirstSocketModeHandler(world.app, "xapp-dedup")  # as `mailqbot serve` has it
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        payload = slash_command_payload(
            "summary mx1", team_id=TEAM, channel_id=CHANNEL, response_url=slack.response_url("w")
        )
        for _ in range(2):  # the same payload in two envelopes, each acknowledged
            envelope = await slack.socket_send("slash_commands", payload)
            await slack.socket_ack(envelope, timeout=3)
        await settle(world)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert await counts(world) == (1, 1, 1)


def test_delivery_keys() -> None:
    assert delivery_key({"type": "event_callback", "event_id": "Ev1"}) == "event:Ev1"
    assert delivery_key({"command": "/mailq", "trigger_id": "t1"}) == "command:t1"
    click = {
        "type": "block_actions", "trigger_id": "t2", "user": {"id": "U1"},
        "actions": [{"action_id": "mailq_run_replace", "action_ts": "9.9"}],
    }  # fmt: skip
    assert delivery_key(click) == "action:t2:U1:mailq_run_replace"
    assert delivery_key(click | {"trigger_id": None}) == "action:9.9:U1:mailq_run_replace"
    assert delivery_key({"type": "url_verification", "challenge": "x"}) is None
    long = delivery_key({"command": "/mailq", "trigger_id": "x" * 500})
    assert long is not None
    assert len(long) <= 200
    assert long.startswith("command:sha256:")


async def test_replicas_share_the_table_and_old_keys_are_pruned(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    one, two = Deduplicator(sessions), Deduplicator(sessions)
    assert await one.first_time("command:a")
    assert not await two.first_time("command:a")  # another replica saw it
    results = await asyncio.gather(*(d.first_time("event:race") for d in (one, two) * 3))
    assert sorted(results) == [False] * 5 + [True]
    async with sessions() as session, session.begin():
        session.add(SlackDelivery(key="event:old", seen_at=datetime.now(UTC) - timedelta(days=2)))
    assert await one.prune(datetime.now(UTC) - timedelta(days=1)) == 1
    async with sessions() as session:
        keys = set((await session.scalars(select(SlackDelivery.key))).all())
    assert keys == {"command:a", "event:race"}
    assert await one.first_time("event:old")  # forgotten after a day


async def test_database_down_is_unknown_not_first_time(tmp_path: Path) -> None:
    """Fails closed: an unreachable database cannot say a delivery is new (it said True
    before, and a repeated delivery then ran its change again)."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    try:
        assert await Deduplicator(make_sessionmaker(engine)).first_time("command:x") is None
    finally:
        await engine.dispose()
