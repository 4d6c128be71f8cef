"""A message body is private mail: ``/mailq show HOST ID body`` shows it only to the asker.

The real Bolt app over signed HTTP on demo hosts (real in-process SSH servers), a real
database and the fake Slack. Whichever way the body is asked for (the slash command, the
"Show the body" button that answers in a thread, a button that replaces its message),
no public ``chat.postMessage``/``chat.update`` and no file shared in a channel or thread
holds any of it, the placeholder is deleted, and the audit trail keeps neither the body
nor a hash of it. The asker gets it as an ephemeral reply, and its file in their DMs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from bot.db.models import CommandRun
from bot.demo import SENTENCES, SIZES, demo_queue
from bot.inventory import Access, Grant
from helpers.fakes import Call, FakeSlack, block_actions_body
from helpers.refusal_cases import CHANNEL, TEAM, SlackWorld, slack_world

OPERATOR = "U0OPERATOR"
ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="operator", members=[OPERATOR])])
PUBLIC = ("chat.postMessage", "chat.update", "chat.postEphemeral")


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


def a_queue_id() -> str:
    """A deferred demo message with a short body (its IDs do not depend on the clock)."""
    records = (orjson.loads(line) for line in demo_queue("mx1", SIZES["mx1"], time.time()))
    return next(
        r["queue_id"] for r in records if r["queue_name"] == "deferred" and r["message_size"] < 2500
    )


def has_body(value: object) -> bool:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return any(sentence in text for sentence in SENTENCES)


def in_a_channel(slack: FakeSlack) -> list[str]:
    """Everything posted where more than the asker can read it: channels and threads."""
    posted = [
        json.dumps(c.args, ensure_ascii=False)
        for c in slack.calls
        if c.method in PUBLIC and not str(c.args.get("channel", "")).startswith(("D", "U"))
    ]
    shared = [
        (f.content or b"").decode()
        for f in slack.files.values()
        if not str(f.channel or "").startswith("D")
    ]
    return posted + shared + [json.dumps(m) for m in slack.messages_in(CHANNEL)]


def final(call: Call) -> bool:
    return "blocks" in call.args  # progress updates are text only


def leaked(slack: FakeSlack) -> list[str]:
    return [text for text in in_a_channel(slack) if has_body(text)]


async def assert_only_the_asker_saw_the_body(
    world: SlackWorld, slack: FakeSlack, response: str
) -> None:
    async with asyncio.timeout(20):  # until the result arrived anywhere: privately or not
        while not (slack.calls_to(f"response_url:{response}") or leaked(slack)):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a file in the thread follows the public result
    assert leaked(slack) == []
    reply = await world.ephemeral(response)
    assert reply.get("replace_original") is False  # a button's public message stays as it was
    assert has_body(reply["blocks"]), "the asker did not get the body"
    assert "direct messages" in json.dumps(reply["blocks"])
    (dm,) = [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == OPERATOR]
    assert not has_body(dm.args)
    dm_channel = slack.dm_channel(OPERATOR)
    await slack.wait_for(
        "files.completeUploadExternal", predicate=lambda c: c.args["channel_id"] == dm_channel
    )
    (file,) = [f for f in slack.files.values() if f.channel == dm_channel]
    assert has_body((file.content or b"").decode())
    rows = await world.audit_rows()
    assert not any(has_body(row.detail) for row in rows)
    remote = rows[-1].detail["remote"]
    (read_body,) = [r for r in remote if "postcat -b" in r["command"]]
    assert read_body["stdout_sha256"] is None  # a short body could be guessed from its hash
    async with world.sessions() as session:
        runs = (await session.scalars(select(CommandRun))).all()
    assert [(r.command, r.outcome) for r in runs][-1] == ("show", "ok")
    assert not any(has_body(f"{r.text} {r.error}") for r in runs)


async def test_slash_command_body_goes_only_to_the_asker(
    world: SlackWorld, slack: FakeSlack
) -> None:
    qid = a_queue_id()
    response = await world.slash(f"show mx1 {qid} body", user=OPERATOR)
    await assert_only_the_asker_saw_the_body(world, slack, response)
    (placeholder,) = [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == CHANNEL]
    assert "Working" in placeholder.args["text"]
    (deleted,) = slack.calls_to("chat.delete")
    assert deleted.args["channel"] == CHANNEL
    assert slack.messages_in(CHANNEL) == []  # the placeholder is gone, nothing replaced it
    assert not any("blocks" in c.args for c in slack.calls_to("chat.update"))


async def test_the_show_the_body_button_does_not_answer_in_the_thread(
    world: SlackWorld, slack: FakeSlack
) -> None:
    qid = a_queue_id()
    await world.slash(f"show mx1 {qid}", user=OPERATOR)  # the public view, without the body
    updates = await slack.wait_for("chat.update", timeout=20, predicate=final)
    result = updates[-1].args
    buttons = [e for b in result["blocks"] if b["type"] == "actions" for e in b["elements"]]
    (button,) = [b for b in buttons if b["text"]["text"] == "Show the body"]
    ts = result["ts"]
    (public,) = await slack.wait_for("files.completeUploadExternal")  # headers, no body
    assert public.args["channel_id"] == CHANNEL
    name = world.response_name()
    body = block_actions_body(
        button["action_id"], button["value"], user_id=OPERATOR, team_id=TEAM,
        channel_id=CHANNEL, message_ts=ts, response_url=slack.response_url(name),
    )  # fmt: skip
    assert await world.post(body) == 200
    await assert_only_the_asker_saw_the_body(world, slack, name)
    thread = [m for m in slack.messages_in(CHANNEL) if m.get("thread_ts") == ts]
    assert thread == []  # its placeholder was deleted; nothing else was posted there


async def test_a_replace_button_never_puts_the_body_in_its_message(
    world: SlackWorld, slack: FakeSlack
) -> None:
    qid = a_queue_id()
    ts = slack.seed_message(CHANNEL, "a public list of the queue")
    before: dict[str, Any] = dict(slack.messages[(CHANNEL, ts)])
    response = await world.click(f"show mx1 {qid} body", OPERATOR, ts)
    await assert_only_the_asker_saw_the_body(world, slack, response)
    assert slack.messages[(CHANNEL, ts)] == before  # neither replaced nor deleted
