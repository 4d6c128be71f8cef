"""``/mailq show`` through the whole pipeline on demo hosts (real in-process SSH servers).

Also: what the reply looks like for hostile and oversized messages (escaped, inside Block
Kit's limits), and that no remote output reaches the logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

import bot.demo
from bot import render
from bot.app.pipeline import Outcome, handle
from bot.context import Request
from bot.db.models import AuditEvent
from bot.demo import SIZES, demo_queue
from bot.errors import UsageError
from bot.inventory import Access, Grant
from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.postcat import (
    BodyExcerpt,
    EnvelopeRecipient,
    Header,
    MessageRecipient,
    PostcatOutput,
)
from bot.text import escape_mrkdwn
from commands.show import ShowModel, fit, queue_id_argument
from helpers.blockkit import assert_valid_block_kit
from helpers.demo_world import World, demo_world

TEAM = "T0LAB"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="viewer", members=["U0VIEWER"]),
        Grant(role="operator", members=["U0OPERATOR"]),
    ],
)
NOW = 1_795_000_000.0


def demo_records(host: str = "mx1") -> list[dict[str, Any]]:
    """The demo host's queue (its IDs and contents do not depend on the clock)."""
    return [orjson.loads(line) for line in demo_queue(host, SIZES[host], NOW)]


def pick(test: Any, host: str = "mx1") -> dict[str, Any]:
    return next(r for r in demo_records(host) if r["queue_name"] == "deferred" and test(r))


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with demo_world(db_url, tmp_path, ACCESS) as world:
        yield world


def slack(text: str, user: str = "U0VIEWER") -> Request:
    return Request(source="slack", user_id=user, team_id=TEAM, channel_id="C1", text=text)


async def remote_of_last_run(world: World) -> list[dict[str, Any]]:
    async with world.sessions() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    remote: list[dict[str, Any]] = events[-1].detail["remote"]  # type: ignore[index]
    return remote


def tool_commands(world: World, host: str = "mx1") -> list[str]:
    """What ran on the demo host, without the ``timeout`` prefix."""
    return [c.split(" ", 4)[-1] for c in world.demo.servers[host].commands]


def block_texts(outcome: Outcome) -> str:
    return json.dumps(outcome.reply.blocks, ensure_ascii=False)


# -- through the pipeline ---------------------------------------------------------------


async def test_show_gives_envelope_reasons_and_headers_without_the_body(world: World) -> None:
    record = pick(lambda r: len(r["recipients"]) > 1 and r["message_size"] % 5 == 0)
    qid = record["queue_id"]
    outcome = await handle(slack(f"show mx1 {qid}"), world.services)
    assert outcome.ok, outcome.reply.text
    text = outcome.reply.text
    assert text.startswith(f"Message {qid} on mx1: deferred")
    for rcpt in record["recipients"]:
        assert rcpt["address"] in text
        assert rcpt["delay_reason"].split("<")[0] in text
    assert "1 already delivered" in text  # a done_recipient from postcat
    assert "Body withheld" in text
    assert not outcome.reply.private  # envelope and headers may be shown in the channel
    assert_valid_block_kit(outcome.reply.blocks)
    assert '"action_id": "mailq_run_thread"' in block_texts(outcome)
    assert f'"value": "show mx1 {qid} body"' in block_texts(outcome)
    assert outcome.reply.attachment is not None
    assert outcome.reply.attachment.filename == f"{qid}-mx1.txt"
    assert "Received: from app.demo.test" in outcome.reply.attachment.content
    assert tool_commands(world) == [
        "/usr/sbin/postconf -h mail_version",
        "/usr/sbin/postqueue -j",
        f"/usr/sbin/postcat -eh -q {qid}",
    ]
    remote = await remote_of_last_run(world)
    assert [r["command"].split(" ", 4)[-1] for r in remote] == tool_commands(world)
    fingerprint = world.demo.servers["mx1"].host_key_fingerprint()
    assert remote[2]["host_key"] == fingerprint
    assert remote[2]["exit"] == 0


async def test_the_listing_is_left_as_soon_as_the_message_is_found(world: World) -> None:
    qid = demo_records()[5]["queue_id"]
    assert (await handle(slack(f"show mx1 {qid}"), world.services)).ok
    listing = (await remote_of_last_run(world))[1]
    assert listing["stopped_early"] is True
    assert listing["exit"] is None
    assert listing["stdout_bytes"] < 1840 * 500


async def test_body_needs_the_operator_role(world: World) -> None:
    qid = pick(lambda r: True)["queue_id"]
    outcome = await handle(slack(f"show mx1 {qid} body"), world.services)
    assert not outcome.ok
    assert "needs the operator role" in outcome.reply.text
    assert "`/mailq show mx1 QUEUE_ID` shows the envelope" in outcome.reply.text
    assert tool_commands(world) == []


async def test_body_is_cut_and_says_how_much_was_left_out(world: World) -> None:
    record = pick(lambda r: r["message_size"] > 50_000)
    qid = record["queue_id"]
    outcome = await handle(slack(f"show mx1 {qid} body", user="U0OPERATOR"), world.services)
    assert outcome.ok, outcome.reply.text
    assert "Body: the first 60 lines" in outcome.reply.text
    assert "KiB not shown" in outcome.reply.text
    assert "Show the body" not in block_texts(outcome)
    assert outcome.reply.private  # front ends show it only to the asker
    assert "```" in block_texts(outcome)
    assert_valid_block_kit(outcome.reply.blocks)
    assert outcome.reply.attachment is not None
    body = outcome.reply.attachment.content.split("KiB not shown.\n", 1)[1].splitlines()
    assert len(body) == 60
    assert tool_commands(world)[-1] == f"/usr/sbin/postcat -b -q {qid}"
    read_body = (await remote_of_last_run(world))[-1]
    assert read_body["stopped_early"] is True  # postcat -b was closed after the first chunk


async def test_a_small_body_is_shown_whole_in_the_console(world: World) -> None:
    qid = pick(lambda r: r["message_size"] < 2500)["queue_id"]
    request = Request(source="console", user_id="console:test", text=f"show mx1 {qid} body")
    outcome = await handle(request, world.services)
    assert outcome.ok
    assert "), complete." in outcome.reply.console


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("show mx1 ABCDEF1234", "No message ABCDEF1234 in the queue on mx1: it may have been"),
        ("show mx1 ALL", "`ALL` is not a Postfix queue ID"),
        ("show mx1 'A B'", "is not a Postfix queue ID"),
        ("show mx1 ABCDEF1234 please", "only the word `body` may follow"),
        ("show mx1", "required: QUEUE_ID"),
        ("show nosuch ABCDEF1234", "Unknown host `nosuch`"),
    ],
)
async def test_clear_errors(world: World, text: str, says: str) -> None:
    outcome = await handle(slack(text), world.services)
    assert not outcome.ok
    assert says in outcome.reply.text
    if "No message" in says:
        assert "`/mailq list mx1` shows what is queued" in outcome.reply.text
        assert (await remote_of_last_run(world))[1]["exit"] == 0  # read to the end
    else:
        assert tool_commands(world) == []


async def test_a_message_that_leaves_while_being_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(_host: Any, queue_id: str, _flags: str) -> tuple[int, bytes, bytes]:
        return 1, b"", f"postcat: fatal: open queue file {queue_id}: No such file\n".encode()

    monkeypatch.setattr(bot.demo, "demo_postcat", gone)
    qid = pick(lambda r: True)["queue_id"]
    outcome = await handle(slack(f"show mx1 {qid}"), world.services)
    assert not outcome.ok
    assert f"Message {qid} left the queue on mx1 while mailqbot was reading it" in (
        outcome.reply.text
    )
    assert (await remote_of_last_run(world))[-1]["exit"] == 1


async def test_sudo_asking_for_a_password_is_a_clear_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def password(*_args: Any) -> tuple[int, bytes, bytes]:
        return 1, b"", b"sudo: a password is required\n"

    monkeypatch.setattr(bot.demo, "demo_postcat", password)
    qid = pick(lambda r: True)["queue_id"]
    outcome = await handle(slack(f"show mx1 {qid}"), world.services)
    assert not outcome.ok
    assert "sudoers" in outcome.reply.text


async def test_no_message_text_reaches_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    record = pick(lambda r: r["message_size"] > 20_000)
    caplog.set_level(logging.DEBUG)
    request = Request(source="console", user_id="console:test", text="")
    for text in (f"show mx1 {record['queue_id']} body", "show mx1 ABCDEF1234"):
        await handle(Request(request.source, request.user_id, text), world.services)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "postcat" in logged  # the executor logs what ran and how much came back...
    for secret in ("Subject", "receipt", "Thank you", record["recipients"][0]["address"]):
        assert secret not in logged  # ...but never what it said


# -- the reply: hostile and oversized messages ----------------------------------------

HOSTILE = "<!channel> <@U123> <https://evil.test|click> & ``` \u202e\u200b"


def hostile_model(recipients: int = 300, reasons: int = 40) -> ShowModel:
    rcpts = tuple(
        Recipient(f"{HOSTILE}{i}@x{i % reasons}.test" * 3, f"{HOSTILE} reason {i % reasons} " * 20)
        for i in range(recipients)
    )
    listing = QueueMessage("deferred", "ABCDEF1234", int(NOW) - 3600, 99_999, HOSTILE * 50, rcpts)
    headers = tuple(
        Header(name, (f"{name}: {HOSTILE * 200}", f"\t{HOSTILE}"))
        for name in ("Subject", "From", "To", "Cc", "Date", "Message-ID", "X-Other")
    )
    envelope = PostcatOutput(
        queue_id="ABCDEF1234",
        queue_name="deferred",
        path="deferred/A/ABCDEF1234",
        sender=HOSTILE,
        recipients=(EnvelopeRecipient("done@x.test", "", "delivered"),),
        attributes=(("log_message_origin", HOSTILE), ("helo_name", HOSTILE * 40)),
        headers=headers,
        content_size=99_999,
    )
    shown = tuple(MessageRecipient(r.address, "waiting", r.delay_reason) for r in rcpts)
    return ShowModel(
        host="mx1",
        now=NOW,
        listing=listing,
        postcat=envelope,
        recipients=(*shown, MessageRecipient("done@x.test", "delivered")),
        body=BodyExcerpt(tuple([HOSTILE * 30] * 60), 4000, False),
        body_requested=True,
        envelope_cut=True,
        body_limits=(60, 4096),
    )


def test_hostile_oversized_message_stays_escaped_and_within_block_kit() -> None:
    rendered = render.render("show", hostile_model())
    assert_valid_block_kit(rendered.blocks)
    for block in rendered.blocks:
        for field in [block.get("text"), *block.get("fields", [])]:
            if isinstance(field, dict) and field.get("type") == "mrkdwn":
                body = field["text"]
                assert body.count("<") == body.count("<!date^")
                assert body.count("```") % 2 == 0
                assert "\u202e" not in body
                assert "\u200b" not in body
    # Slack's notification text (the first line) holds no queue-derived text at all.
    assert rendered.fallback.startswith("Message ABCDEF1234 on mx1: deferred, 97.7 KiB")
    assert "<" not in rendered.fallback
    assert "\u202e" not in rendered.console  # the terminal gets the text without invisibles
    assert "more groups of recipients" in json.dumps(rendered.blocks)


def test_decoded_headers_are_shown_decoded() -> None:
    model = hostile_model(recipients=1, reasons=1)
    subject = Header("Subject", ("Subject: =?utf-8?q?R=C3=A9union_=3C!channel=3E?=",))
    model = replace(model, postcat=replace(model.postcat, headers=(subject,)))
    assert model.key_headers() == [("Subject", "Réunion <!channel>")]
    rendered = render.render("show", model)
    assert "Réunion &lt;!channel&gt;" in json.dumps(rendered.blocks, ensure_ascii=False)


@given(st.text(max_size=300), st.integers(min_value=2, max_value=400))
def test_fit_never_exceeds_its_budget_once_escaped(text: str, limit: int) -> None:
    assert len(escape_mrkdwn(fit(text, limit))) <= limit


@pytest.mark.parametrize(
    ("typed", "queue_id"),
    [
        ("3F67B16B2ED", "3F67B16B2ED"),
        ("3f67b16b2ed", "3F67B16B2ED"),
        ("3F67B16B2ED*", "3F67B16B2ED"),
        ("3F67B16B2ED!", "3F67B16B2ED"),
        ("4Y2FQ3Lkb1z9Kq", "4Y2FQ3Lkb1z9Kq"),
    ],
)
def test_queue_ids_as_people_paste_them(typed: str, queue_id: str) -> None:
    assert queue_id_argument(typed) == queue_id


@pytest.mark.parametrize("typed", ["ALL", "4Y2FQ3LKB1Z9KQ", "3F67B16B2ED;reboot", "-q", ""])
def test_queue_id_argument_refuses_the_rest(typed: str) -> None:
    with pytest.raises(UsageError, match="not a Postfix queue ID"):
        queue_id_argument(typed)


def test_a_bounced_recipient_is_shown_bounced_with_its_escaped_reason() -> None:
    model = hostile_model(recipients=1, reasons=1)
    bounced = MessageRecipient("b@x.test", "bounced", f"550 5.1.1 {HOSTILE}")
    model = replace(model, recipients=(*model.recipients, bounced))
    assert "1 bounced (notice not sent yet)" in model.recipient_counts()
    rendered = render.render("show", model)
    blocks = json.dumps(rendered.blocks, ensure_ascii=False)
    assert "*1 bounced* `550 5.1.1 &lt;!channel&gt;" in blocks
    assert "1 bounced: 550 5.1.1 <!channel>" in rendered.console
    assert "bounced: 550 5.1.1" in model.recipient_table()
    assert_valid_block_kit(rendered.blocks)
