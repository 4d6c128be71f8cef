"""Slack answering 429 or 5xx (SECURITY.md): the bot's own Web API client retries a 429 after
its Retry-After, and a failed Slack call never makes a host command run twice.

The bot is the real Bolt app over signed HTTP, with the client ``bot.slack.client``
builds, on demo hosts that record every command they receive; the fake Slack server
answers the faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inventory import Access, Grant
from helpers.fakes import FakeSlack, block_actions_body
from helpers.refusal_cases import CHANNEL, TEAM, SlackWorld, slack_world

ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="operator", members=["U0OPS"])])
HOLD = "hold mx1 domain=typo.example"


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


def holds(world: SlackWorld) -> list[str]:
    return [c for c in world.host_commands() if "/usr/sbin/postsuper" in c and " -h " in c]


def queue_reads(world: SlackWorld) -> int:
    return sum(c.endswith("postqueue -j") for c in world.host_commands())


async def test_rate_limited_posts_are_retried_after_retry_after(
    world: SlackWorld, slack: FakeSlack
) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    slack.fail_next("chat.update", status=429, retry_after=1, times=2)
    await world.slash("summary mx1", user="U0OPS")
    await slack.wait_for("chat.update", timeout=30, predicate=lambda c: c.status == 200)
    first, second = slack.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1, "Retry-After was not honoured"
    updates = slack.calls_to("chat.update")
    assert [c.status for c in updates][:3] == [429, 429, 200]
    assert updates[1].time - updates[0].time >= 1
    await asyncio.sleep(0.5)
    assert queue_reads(world) == 1, "the host was read again for a Slack retry"
    assert len(slack.calls_to("chat.postMessage")) == 2  # one placeholder, posted once


async def test_a_slack_outage_after_a_change_never_runs_it_twice(
    world: SlackWorld, slack: FakeSlack
) -> None:
    """Slack fails (503) on every update while a hold runs: progress is skipped, the hold
    runs once and is audited as done, its result arrives through the response_url instead
    of in place, and the same click delivered again is dropped."""
    slack.fail_next("chat.update", status=503, times=50)
    ts = slack.seed_message(CHANNEL, "a summary with a Hold button")
    body = block_actions_body(
        "mailq_run_replace", HOLD, user_id="U0OPS", team_id=TEAM, channel_id=CHANNEL,
        message_ts=ts, response_url=slack.response_url("hold"),
    )  # fmt: skip
    assert await world.post(body) == 200
    (reply,) = await slack.wait_for("response_url:hold", timeout=30)
    assert reply.args.get("response_type") == "in_channel"
    assert reply.args.get("text") == "Hold on mx1: done", reply.args
    assert reply.args.get("blocks"), "the result itself, not an error"
    assert all(c.status == 503 for c in slack.calls_to("chat.update"))
    assert len(holds(world)) == 1
    assert await world.post(body) == 200  # Slack redelivers the click
    await asyncio.sleep(1.0)
    assert len(holds(world)) == 1
    rows = [r for r in await world.audit_rows() if r.detail.get("text") == HOLD]
    assert [r.action for r in rows] == ["command.ok"]
    assert sum("postsuper -h" in c["command"] for c in rows[0].detail["remote"]) == 1
