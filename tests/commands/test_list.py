"""`/mailq list` through the pipeline on demo hosts (real in-process SSH servers).

The oracle is the demo host's own queue, regenerated here and filtered the obvious way.
Paging is followed through the Next buttons exactly as Slack would send their values back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import commands
from bot import render
from bot.app.pipeline import Outcome, handle
from bot.context import Request
from bot.db.models import AuditEvent
from bot.demo import SIZES, demo_queue
from bot.inventory import Access, Grant
from bot.postfix.filter import QueueFilter
from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.postfix import PostqueueJsonParser
from bot.postfix.reasons import classify
from bot.slack.payloads import slack_text
from commands.list import ListPage, PageBuilder, Paging, take_paging
from helpers.blockkit import all_text, assert_valid_block_kit
from helpers.demo_world import World, demo_world
from helpers.listpage import counts, page_ids

NOW = 1_795_000_000.0
TEAM = "T0LAB"
ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="viewer", members=["U0VIEWER"])])


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with demo_world(db_url, tmp_path, ACCESS, now=NOW) as world:
        world.services = replace(world.services, clock=lambda: NOW + 60)
        yield world


def demo_messages(host: str) -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    return parser.feed(b"".join(demo_queue(host, SIZES[host], NOW))) + parser.close()


MX1 = demo_messages("mx1")


async def ask(world: World, text: str) -> Outcome:
    request = Request(source="slack", user_id="U0VIEWER", team_id=TEAM, channel_id="C1", text=text)
    return await handle(request, world.services)


def next_value(blocks: list[dict[str, Any]]) -> str | None:
    for block in blocks:
        if block["type"] == "actions":
            (button,) = block["elements"]
            assert button["action_id"] == "mailq_run_replace"
            return str(button["value"])
    return None


def recount(messages: list[QueueMessage], keep: Any) -> tuple[list[str], int]:
    """IDs of the messages with a recipient that ``keep(message, recipient)``, and those
    recipients counted."""
    ids, rcpts = [], 0
    for m in messages:
        hits = [r for r in m.recipients if keep(m, r)]
        if hits:
            ids.append(m.queue_id)
            rcpts += len(hits)
    return ids, rcpts


def domain(r: Recipient) -> str:
    return r.address.rpartition("@")[2]


ORACLES: dict[str, Any] = {
    "": lambda m, r: True,
    "reason=greylisted": lambda m, r: classify(r.delay_reason).value == "greylisted",
    "domain=example": lambda m, r: domain(r).endswith(".example"),
    "domain=gmail.example reason=connection_timeout": lambda m, r: False,
    "sender=<> queue=deferred": lambda m, r: m.sender == "" and m.queue_name == "deferred",
    "older=2h reason=mailbox_full": lambda m, r: (
        NOW + 60 - m.arrival_time >= 7200 and "Mailbox full" in r.delay_reason
    ),
    "'reason=too many' queue=hold,active": lambda m, r: (
        m.queue_name in ("hold", "active") and "too many" in r.delay_reason.lower()
    ),
}


@pytest.mark.parametrize("words", list(ORACLES))
async def test_counts_and_first_page_match_a_recount(world: World, words: str) -> None:
    queue = demo_messages("mx1")
    ids, rcpts = recount(queue, ORACLES[words])
    outcome = await ask(world, f"list mx1 {words}")
    assert outcome.ok, outcome.reply.text
    assert counts(outcome.reply.blocks) == (len(ids), len(queue), rcpts)
    assert page_ids(outcome.reply.blocks) == ids[:20]
    assert_valid_block_kit(outcome.reply.blocks)
    assert (next_value(outcome.reply.blocks) is None) == (len(ids) <= 20)


async def test_next_buttons_walk_every_match_exactly_once(world: World) -> None:
    expected, _ = recount(demo_messages("mx1"), ORACLES["reason=greylisted"])
    text: str | None = "list mx1 reason=greylisted limit=150"
    seen: list[str] = []
    pages = 0
    while text is not None:
        outcome = await ask(world, text)
        assert outcome.ok, outcome.reply.text
        assert_valid_block_kit(outcome.reply.blocks)
        seen += page_ids(outcome.reply.blocks)
        pages += 1
        text = next_value(outcome.reply.blocks)
        if text is not None:
            assert text == f"list mx1 reason=greylisted limit=150 offset={len(seen)}"
    assert seen == expected
    assert pages == -(-len(expected) // 150) > 2


async def test_next_button_value_round_trips_the_filter(world: World) -> None:
    typed = "list mx1 domain=GMAIL.example. sender=<> 'reason=Recipient address' older=30m"
    outcome = await ask(world, typed)
    value = next_value(outcome.reply.blocks)
    assert value is not None
    _, typed_args = commands.parse(typed)
    _, value_args = commands.parse(value)
    typed_paging, typed_words = take_paging(typed_args.words)
    value_paging, value_words = take_paging(value_args.words)
    assert QueueFilter.parse(value_words) == QueueFilter.parse(typed_words)
    assert (typed_paging, value_paging) == (Paging(), Paging(offset=20))
    page2 = await ask(world, value)
    assert counts(page2.reply.blocks)[0] == counts(outcome.reply.blocks)[0]
    assert "Messages 21–" in all_text(page2.reply.blocks)


async def test_console_text_lists_the_page_and_the_next_command(world: World) -> None:
    outcome = await ask(world, "list relay1 limit=5")
    lines = outcome.reply.text.splitlines()
    assert lines[0].startswith("Queue on relay1 at ")
    assert "Filter: all messages" in lines[1]
    assert any(line.startswith("queue id    queue     arrived") for line in lines)
    assert lines[-1] == "Next page: list relay1 limit=5 offset=5"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("list mx1 domian=gmail.example", "Did you mean `domain=`?"),
        ("list mx1 greylisted", "Did you mean `reason=greylisted`?"),
        ("list mx1 older=2", "with a unit: 90s, 30m, 1h30m, 2d or 1w"),
        ("list mx1 domain=bad_domain.example", "is not a valid domain name"),
        ("list mx1 id=ALL", "is not a Postfix queue ID"),
        ("list mx1 limit=0", "from 1 to 200"),
        ("list mx1 limit=500", "from 1 to 200"),
        ("list mx1 offset=-5", "`offset=` once, as a whole number"),
        ("list mx1 limit=5 limit=6", "`limit=` once"),
        ("list edge", "`edge` is a group. Name one host: mx1, mx2, relay1"),
        ("list mx9", "Unknown host `mx9`"),
        ("list", "required: HOST"),
    ],
)
async def test_bad_filters_say_what_to_do_and_touch_no_host(
    world: World, text: str, says: str
) -> None:
    outcome = await ask(world, text)
    assert not outcome.ok
    assert says in outcome.reply.text
    if "Unknown host" not in says:  # that one lists the known hosts instead
        assert "Usage: /mailq list HOST" in outcome.reply.text
    assert_valid_block_kit(outcome.reply.blocks)
    assert all(server.commands == [] for server in world.demo.servers.values())


async def test_past_the_end_and_no_match_say_what_next(world: World) -> None:
    past = await ask(world, "list relay1 offset=1000")
    total = len(demo_messages("relay1"))
    assert f"starts after the last of the {total} matching messages" in past.reply.text
    assert next_value(past.reply.blocks) is None
    none = await ask(world, "list relay1 domain=nowhere.example")
    assert "No message matches" in all_text(none.reply.blocks)
    assert "/mailq summary relay1" in all_text(none.reply.blocks)
    for outcome in (past, none):
        assert_valid_block_kit(outcome.reply.blocks)


async def test_hostile_filter_text_pings_nobody_and_survives_the_button(world: World) -> None:
    outcome = await ask(world, "list mx1 sender=<!channel>@hostile.test limit=200")
    assert outcome.ok, outcome.reply.text
    text = all_text(outcome.reply.blocks)
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;@hostile.test" in text
    assert_valid_block_kit(outcome.reply.blocks)
    # The value is escaped like all template text; the Slack front end undoes it on the click.
    value = next_value(outcome.reply.blocks)
    assert value is not None
    assert "<" not in value
    assert slack_text(value) == "list mx1 'sender=<!channel>@hostile.test' limit=200 offset=200"


async def test_the_run_is_audited_with_its_remote_commands(world: World) -> None:
    await ask(world, "list mx2 reason=tls_failure")
    async with world.services.sessions() as session:
        (event,) = (await session.scalars(select(AuditEvent))).all()
    assert event.detail["command"] == "list"
    remote: list[dict[str, Any]] = event.detail["remote"]  # type: ignore[assignment]
    assert [r["command"].split()[-1] for r in remote] == ["mail_version", "-j"]
    assert remote[-1]["stdout_sha256"]


async def test_help_lists_the_command(world: World) -> None:
    outcome = await ask(world, "help")
    assert "/mailq list HOST [domain=D]" in outcome.reply.text


# -- the page model, without hosts -------------------------------------------------------------


def page_of(rows: int, limit: int, sender: str, recipient: str) -> ListPage:
    builder = PageBuilder(QueueFilter(), NOW, Paging(limit=limit))
    for n in range(rows):
        builder.add(
            QueueMessage(
                "deferred",
                f"{0xA00000 + n:X}",
                int(NOW) - n * 600,
                10**6 + n,
                sender,
                (Recipient(recipient, "Greylisted"), Recipient("b@x.test", "")),
            )
        )
    return ListPage("mx1", NOW, builder.filter, builder.paging, builder.scanned,
                    builder.matched, builder.recipients, builder.bytes, builder.rows)  # fmt: skip


def test_the_largest_page_of_the_worst_text_fits_block_kit() -> None:
    page = page_of(rows=500, limit=200, sender="<" * 300 + "@evil.test", recipient="&" * 200)
    rendered = render.render("list", page)
    assert_valid_block_kit(rendered.blocks)
    assert len(page_ids(rendered.blocks)) == 200


def test_a_page_of_twenty_fits_two_sections() -> None:
    long_address = "first.last-name+tag@mail.subdomain.example"  # wider than a cell
    rendered = render.render("list", page_of(30, 20, long_address, long_address))
    tables = [b for b in rendered.blocks if "```queue id" in b.get("text", {}).get("text", "")]
    assert 1 <= len(tables) <= 2
    assert len(page_ids(rendered.blocks)) == 20


def test_memory_holds_one_page_however_many_match() -> None:
    page = page_of(rows=20_000, limit=20, sender="a@b.test", recipient="c@d.test")
    assert page.matched == 20_000
    assert len(page.rows) == 20
    assert page.recipients == 40_000


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 1900),
    st.integers(1, 200),
    st.sampled_from(["", "reason=greylisted", "domain=example queue=hold", "older=3h"]),
)
def test_a_page_is_the_slice_of_all_matches(offset: int, limit: int, words: str) -> None:
    flt = QueueFilter.parse(words.split())
    builder = PageBuilder(flt, NOW, Paging(limit=limit, offset=offset))
    for m in MX1:
        builder.add(m)
    matches = [m for m in MX1 if flt.matches(m, NOW)]
    assert [r.queue_id for r in builder.rows] == [m.queue_id for m in matches][offset:][:limit]
    assert builder.matched == len(matches)
    assert builder.bytes == sum(m.message_size for m in matches)
