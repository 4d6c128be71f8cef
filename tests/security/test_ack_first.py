"""HTTP mode acknowledges a signed slash command or click before any work: while the
database is held by another transaction the answer still comes at once, and the command
runs (once) when the database is free again. A bad signature is refused as before."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text

from bot.db.models import CommandRun
from bot.db.session import make_engine
from bot.inventory import Access, Grant
from bot.slack.http import AckFirstSocketModeHandler, Endpoint, ThreadedSite
from helpers.fakes import FakeSlack, sign, slash_command_body, slash_command_payload
from helpers.refusal_cases import CHANNEL, SECRET, TEAM, SlackWorld, slack_world

ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="viewer", members=["U0VIEWER"])])


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


async def runs(world: SlackWorld) -> int:
    async with world.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CommandRun)) or 0)


async def test_acknowledged_while_the_database_is_held(
    world: SlackWorld, slack: FakeSlack, db_url: str
) -> None:
    body = slash_command_body(
        "summary mx1", user_id="U0VIEWER", team_id=TEAM, channel_id=CHANNEL,
        response_url=slack.response_url("held"),
    )  # fmt: skip
    engine = make_engine(db_url)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()  # SQLite: BEGIN IMMEDIATE, the write lock
            if engine.dialect.name == "postgresql":
                await holder.execute(text("LOCK TABLE slack_deliveries IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            async with asyncio.timeout(10):  # Bolt's own path would wait for the lock
                assert await world.post(body) == 200
            took = time.monotonic() - started
            await asyncio.sleep(0.5)
            assert slack.calls_to("chat.postMessage") == []  # waiting for the database
            await transaction.rollback()
    finally:
        await engine.dispose()
    assert took < 0.5, f"the ack took {took:.3f} s"
    await slack.wait_for("chat.update", timeout=30, predicate=lambda c: "blocks" in c.args)
    await asyncio.sleep(0.3)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert await runs(world) == 1


@asynccontextmanager
async def held(db_url: str) -> AsyncIterator[None]:
    """Another transaction holds the deliveries table (SQLite: the write lock) meanwhile."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()  # SQLite: BEGIN IMMEDIATE
            if engine.dialect.name == "postgresql":
                await holder.execute(text("LOCK TABLE slack_deliveries IN ACCESS EXCLUSIVE MODE"))
            yield
            await transaction.rollback()
    finally:
        await engine.dispose()


async def test_socket_mode_envelope_acknowledged_while_the_database_is_held(
    world: SlackWorld, slack: FakeSlack, db_url: str
) -> None:
    handler = AckFirstSocketModeHandler(world.app, "xapp-ack")
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        payload = slash_command_payload(
            "summary mx1", team_id=TEAM, channel_id=CHANNEL, response_url=slack.response_url("s")
        )
        async with held(db_url):
            started = time.monotonic()
            envelope = await slack.socket_send("slash_commands", payload)
            await slack.socket_ack(envelope, timeout=3)
            took = time.monotonic() - started
            await asyncio.sleep(0.3)
            assert slack.calls_to("chat.postMessage") == []
        assert took < 0.5, f"the envelope's ack took {took:.3f} s"
        await slack.wait_for("chat.update", timeout=30, predicate=lambda c: "blocks" in c.args)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert await runs(world) == 1


def timed_post(url: str, body: bytes) -> tuple[int, float]:
    """POST signed ``body`` from this (separate) thread; the status and the time taken."""
    request = urllib.request.Request(url, data=body, headers=sign(SECRET, body), method="POST")
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return response.status, time.monotonic() - started


async def test_acknowledged_while_the_main_loop_is_busy(
    world: SlackWorld, slack: FakeSlack
) -> None:
    """The Slack listener's own thread answers while the main loop (where Bolt, polls and
    alerts run) is stuck in one long step; the command runs once the loop is free."""
    site = ThreadedSite(Endpoint(world.app, SECRET).web_app(), "127.0.0.1", 0)
    await site.start()
    try:
        body = slash_command_body(
            "summary mx1", user_id="U0VIEWER", team_id=TEAM, channel_id=CHANNEL,
            response_url=slack.response_url("busy"),
        )  # fmt: skip
        url = f"http://127.0.0.1:{site.port}/slack/events"
        posting = asyncio.get_running_loop().run_in_executor(None, timed_post, url, body)
        time.sleep(1.0)  # the main loop does nothing else for a second
        status, took = await posting
        assert status == 200
        assert took < 0.5, f"the ack took {took:.3f} s"
        await slack.wait_for("chat.update", timeout=30, predicate=lambda c: "blocks" in c.args)
    finally:
        await site.cleanup()
    assert await runs(world) == 1


async def test_a_bad_signature_is_refused_and_nothing_runs(
    world: SlackWorld, slack: FakeSlack
) -> None:
    body = slash_command_body("summary mx1", team_id=TEAM, channel_id=CHANNEL)
    async with aiohttp.ClientSession() as http:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=" + "0" * 64,
        }
        async with http.post(f"{world.url}/slack/events", data=body, headers=headers) as response:
            assert response.status == 401
    await asyncio.sleep(0.3)
    assert slack.calls_to("chat.postMessage") == []
    assert await runs(world) == 0
