"""`/mailq summary lab` through Slack's real request format, against the real lab.

The bot runs as its own `mailqbot serve` process in HTTP mode; the test signs a slash command
like Slack does, and reads what the bot posted on the fake Slack Web API. The oracle is
`postqueue -j` read on the lab host at the same moment, recounted here independently.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import AuditEvent, CommandRun
from bot.postfix.reasons import classify
from bot.stores import audit
from helpers.fakes import FakeSlack, block_actions_body, sign, slash_command_body
from helpers.labbot import BotProcess, final
from helpers.labqueue import postqueue_json

SECRET = "lab-signing-secret"
pytestmark = pytest.mark.lab


def expected_counts(
    queue: list[dict[str, object]],
) -> tuple[Counter[str], dict[str, tuple[int, int]]]:
    """Messages per queue, and (messages, recipients) per deferred reason class label."""
    per_queue: Counter[str] = Counter(str(m["queue_name"]) for m in queue)
    classes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for message in queue:
        if message["queue_name"] != "deferred":
            continue
        seen = set()
        for rcpt in message["recipients"]:  # type: ignore[attr-defined]
            label = classify(rcpt.get("delay_reason", "")).label
            classes[label][1] += 1
            if label not in seen:
                classes[label][0] += 1
                seen.add(label)
    return per_queue, {k: (v[0], v[1]) for k, v in classes.items()}


def code_block(blocks: list[dict[str, object]], first_word: str) -> list[list[str]]:
    """The rows of the table in a ``` block whose header starts with ``first_word``."""
    for block in blocks:
        texts = [block.get("text", {}), *block.get("fields", [])]  # type: ignore[misc]
        for text in texts:
            body = str(text.get("text", "")) if isinstance(text, dict) else ""
            match = re.search(r"```(.*?)```", body, re.S)
            if match and match.group(1).startswith(first_word):
                lines = match.group(1).splitlines()[1:]
                return [re.split(r"\s{2,}", line.strip()) for line in lines]
    raise AssertionError(f"no table starting with {first_word!r} in the message")


async def post_signed(
    bot: BotProcess, body: bytes, timestamp: int | None = None, secret: str = SECRET
) -> tuple[int, float]:
    headers = sign(secret, body, timestamp)
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        async with http.post(f"{bot.url}/slack/events", data=body, headers=headers) as response:
            await response.read()
            return response.status, time.perf_counter() - started


async def test_summary_matches_postqueue(
    bot: BotProcess, fake_slack: FakeSlack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = postqueue_json()
    body = slash_command_body("summary lab", response_url=fake_slack.response_url("summary"))
    status, elapsed = await post_signed(bot, body)
    assert status == 200
    assert elapsed < 1.5, f"ack took {elapsed:.2f}s"

    working = await fake_slack.wait_for("chat.postMessage")
    assert "Working" in working[0].args["text"]
    update = (await fake_slack.wait_for("chat.update", timeout=90, predicate=final))[-1]
    after = postqueue_json()
    assert before == after, "the lab queue changed during the test"

    per_queue, classes = expected_counts(after)
    blocks = update.args["blocks"]
    shown_queues = {row[0]: int(row[1].replace(",", "")) for row in code_block(blocks, "queue")}
    for name in ("active", "incoming", "deferred", "hold"):
        assert shown_queues[name] == per_queue.get(name, 0), name
    shown_classes = {
        row[0]: (int(row[1].replace(",", "")), int(row[2].replace(",", "")))
        for row in code_block(blocks, "deferred because")
    }
    assert shown_classes == classes
    assert len(classes) >= 8, f"the lab should defer for many reasons, got {sorted(classes)}"

    async with sessions() as session:
        runs = (await session.scalars(select(CommandRun))).all()
        events = (await session.scalars(select(AuditEvent))).all()
    assert [(r.command, r.outcome, r.user_id) for r in runs] == [("summary", "ok", "U0VIEWER")]
    assert len(events) == 1
    assert events[0].host == "lab"
    remote = events[0].detail["remote"]
    commands = [r["command"] for r in remote]
    assert commands[0].endswith(
        "/usr/sbin/postconf -h mail_version maximal_queue_lifetime bounce_queue_lifetime "
        "queue_directory"
    )
    assert any(c.endswith("/usr/sbin/postqueue -j") for c in commands)
    assert any(c.endswith("sudo -n /usr/bin/du -sk /var/spool/postfix/deferred") for c in commands)
    assert [r["exit"] for r in remote] == [0, 0, 0]
    assert remote[-1]["host_key"].startswith("SHA256:")
    assert (await audit.verify(sessions)).ok


@pytest.mark.parametrize(
    ("timestamp_offset", "secret"),
    [(0, "not-the-secret"), (-6 * 60, SECRET)],
    ids=["bad-signature", "six-minutes-old"],
)
async def test_bad_or_stale_signature_is_refused(
    bot: BotProcess,
    fake_slack: FakeSlack,
    sessions: async_sessionmaker[AsyncSession],
    timestamp_offset: int,
    secret: str,
) -> None:
    body = slash_command_body("summary lab", response_url=fake_slack.response_url("x"))
    status, _ = await post_signed(bot, body, int(time.time()) + timestamp_offset, secret)
    assert status == 401
    await asyncio.sleep(0.5)  # had anything started, it would have posted by now
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CommandRun)) == 0
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    assert [c.method for c in fake_slack.calls if c.method != "auth.test"] == []


async def test_run_button_answers_in_the_thread_as_the_clicker(
    bot: BotProcess, fake_slack: FakeSlack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ts = fake_slack.seed_message("C0LAB", "an earlier answer")
    body = block_actions_body(
        "mailq_run_thread", "summary lab", user_id="U0OPERATOR", message_ts=ts,
        response_url=fake_slack.response_url("click"),
    )  # fmt: skip
    status, _ = await post_signed(bot, body)
    assert status == 200
    posted = await fake_slack.wait_for("chat.postMessage")
    assert posted[0].args["thread_ts"] == ts
    await fake_slack.wait_for("chat.update", timeout=90, predicate=final)
    async with sessions() as session:
        runs = (await session.scalars(select(CommandRun))).all()
    assert [(r.user_id, r.outcome) for r in runs] == [("U0OPERATOR", "ok")]


async def test_run_button_rechecks_permission_for_the_clicker(
    bot: BotProcess, fake_slack: FakeSlack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = block_actions_body(
        "mailq_run_thread", "summary lab", user_id="U0STRANGER",
        response_url=fake_slack.response_url("click"),
    )  # fmt: skip
    status, _ = await post_signed(bot, body)
    assert status == 200
    (refusal,) = await fake_slack.wait_for("response_url:click")
    assert refusal.args["response_type"] == "ephemeral"
    assert "may not run `summary`" in refusal.args["text"]
    assert fake_slack.calls_to("chat.postMessage") == []
    async with sessions() as session:
        runs = (await session.scalars(select(CommandRun))).all()
    assert [(r.user_id, r.outcome) for r in runs] == [("U0STRANGER", "denied")]
