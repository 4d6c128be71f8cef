"""No queue change without its record: the database down, or failing at the wrong moment.

Through signed Slack requests against demo hosts (in-process SSH servers that run
``postsuper`` on a real queue listing), with PostgreSQL behind a relay the test cuts:

- with the database cut, ``hold``, ``requeue``, ``flush`` (by ID and all), ``purge`` and
  ``approve`` are refused with a message that says nothing was changed, and no command at
  all reaches a host; once it is back, the same bot serves again, no restart;
- when only the intent record fails, the change is refused and never runs (before, the
  change ran first and its record was written after it);
- when only the outcome record fails after the change ran, the reply says what the host
  did and that its record is missing, and ``/mailq audit`` and ``/mailq plans`` show the
  change as "outcome unknown";
- when only the record of the Slack delivery fails (so a repeat cannot be ruled out),
  de-duplication fails closed: every change and approval is refused and reaches no host,
  while a read is still answered.

The first needs the relay, so PostgreSQL; the others fail one write on purpose and run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from bot.db.models import AuditEvent, SlackDelivery
from bot.demo import SIZES, demo_queue
from bot.inventory import Access, Grant
from helpers.all_commands import all_commands
from helpers.fakes import Cuttable, FakeSlack
from helpers.refusal_cases import TEAM, SlackWorld, slack_world

ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="operator", members=["U0OPS"]),
        Grant(role="approver", members=["U0APPROVER"]),
        Grant(role="admin", members=["U0ADMIN"]),
    ],
)
NOTHING_CHANGED = ("Nothing was changed", "nothing was changed", "did nothing", "changed nothing")


def queue_ids(count: int) -> list[str]:
    """Deferred queue IDs of demo host mx1 (its queue is the same for every start)."""
    found = [json.loads(line) for line in demo_queue("mx1", SIZES["mx1"], time.time())]
    return [m["queue_id"] for m in found if m["queue_name"] == "deferred"][:count]


def test_every_command_that_changes_the_queue_is_journalled() -> None:
    """The gateway commits an intent before a command marked ``changes_queue``: every
    template that builds ``postsuper`` or a flush (``postqueue -f``, ``-i``, ``-s``) marks
    it, and no other template does (tests/helpers/all_commands.py builds them all)."""
    changing = 0
    for command in all_commands():
        program, *words = command.argv
        changes = program == "/usr/sbin/postsuper" or (
            program == "/usr/sbin/postqueue" and bool({"-f", "-i", "-s"} & set(words))
        )
        assert command.changes_queue == changes, command.display()
        changing += changes
    assert changing >= 4 * 8 + 1 + 1  # postsuper -d/-h/-r/-H over the queues, both flushes


@pytest.fixture
async def relay() -> AsyncIterator[Cuttable]:
    async with Cuttable(("127.0.0.1", 5432)) as opened:
        yield opened


@pytest.fixture
async def world(db_url: str, tmp_path: Path, relay: Cuttable) -> AsyncIterator[SlackWorld]:
    if "postgresql" not in db_url:
        pytest.skip("the relay stands between the bot and PostgreSQL")
    via_relay = db_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    async with FakeSlack() as slack, slack_world(via_relay, tmp_path, ACCESS, slack) as opened:
        yield opened


@pytest.fixture
async def plain_world(db_url: str, tmp_path: Path) -> AsyncIterator[SlackWorld]:
    """The same, without the relay: on SQLite and PostgreSQL."""
    async with FakeSlack() as slack, slack_world(db_url, tmp_path, ACCESS, slack) as opened:
        yield opened


async def reply_to(world: SlackWorld, text: str, user: str = "U0OPS") -> str:
    """The reply only the asker sees (an error, a refusal): its text and blocks."""
    name = await world.slash(text, user=user)
    (reply,) = await world.slack.wait_for(f"response_url:{name}", timeout=30)
    return str(reply.args.get("text", "")) + json.dumps(reply.args.get("blocks"))


async def result_of(world: SlackWorld, text: str, user: str = "U0OPS") -> str:
    """A result shown in the channel (the placeholder replaced): its text and blocks."""

    def results() -> list[Any]:
        return [c for c in world.slack.calls_to("chat.update") if "blocks" in c.args]

    before = len(results())
    await world.slash(text, user=user)
    await world.slack.wait_for(
        "chat.update", count=before + 1, timeout=30, predicate=lambda c: "blocks" in c.args
    )
    update = results()[-1]
    return str(update.args.get("text", "")) + json.dumps(update.args.get("blocks"))


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_database_cut_refuses_every_change_then_serves_again(
    world: SlackWorld, relay: Cuttable
) -> None:
    one, two = queue_ids(2)
    planned = await result_of(world, f"purge mx1 {two} why=INC-9")
    plan = re.search(r"\*Plan\* `(p[0-9a-f]{10})`", planned)
    assert plan is not None, planned
    before = list(world.host_commands())
    relay.cut()
    for text, user in [
        (f"hold mx1 {one}", "U0OPS"),
        (f"requeue mx1 {one}", "U0OPS"),
        (f"flush mx1 {one}", "U0OPS"),
        ("flush mx1", "U0OPS"),
        (f"purge mx1 {one} why=INC-10", "U0OPS"),
        (f"approve {plan[1]}", "U0APPROVER"),
    ]:
        said = await reply_to(world, text, user)
        assert any(words in said for words in NOTHING_CHANGED), (text, said)
    assert world.host_commands() == before, "a command reached a host with the database cut"
    relay.restore()
    held = await result_of(world, f"hold mx1 {one}")
    assert "Put on hold" in held, held
    assert any("postsuper -h - deferred" in c for c in world.host_commands()[len(before) :])
    rows = await world.audit_rows()
    assert ("U0OPS", "remote.intent") in {(r.actor, r.action) for r in rows}


@contextmanager
def failing(*actions: str) -> Iterator[None]:
    """Make every flush that adds an audit event whose action starts with one of
    ``actions`` fail (the database failing at that very write)."""

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        for new in session.new:
            if isinstance(new, AuditEvent) and new.action.startswith(actions):
                raise ConnectionResetError(f"injected: the database went away ({new.action})")

    event.listen(Session, "before_flush", before_flush)
    try:
        yield
    finally:
        event.remove(Session, "before_flush", before_flush)


async def test_no_intent_record_no_change(plain_world: SlackWorld) -> None:
    world = plain_world
    (one,) = queue_ids(1)
    with failing("remote.intent"):
        said = await reply_to(world, f"hold mx1 {one}")
    assert "could not write to its audit trail" in said
    assert "nothing was changed there" in said
    assert not any("postsuper" in c for c in world.host_commands())
    rows = await world.audit_rows()
    assert [r.action for r in rows][-1] == "command.refused"


async def test_a_missing_outcome_is_told_and_shown_as_unknown(plain_world: SlackWorld) -> None:
    """The database goes away after the change ran: neither its outcome nor the command's
    record can be written."""
    world = plain_world
    (one,) = queue_ids(1)
    with failing("remote.outcome", "command."):
        said = await reply_to(world, f"hold mx1 {one}")
    assert any("postsuper -h - deferred" in c for c in world.host_commands())
    assert "This ran on mx1, but mailqbot could not record the result" in said, said
    assert "Put on hold" in said, said
    audit = await result_of(world, "audit mx1", user="U0ADMIN")
    assert "OUTCOME UNKNOWN" in audit or "outcome unknown" in audit, audit
    plans = await result_of(world, "plans mx1")
    assert "OUTCOME UNKNOWN" in plans or "outcome unknown" in plans, plans


@contextmanager
def unrecorded_deliveries() -> Iterator[None]:
    """Make recording a Slack delivery fail, as when the database is unreachable at that
    moment: whether the delivery is a repeat cannot be known."""

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        if any(isinstance(new, SlackDelivery) for new in session.new):
            raise ConnectionResetError("injected: the database went away (slack_deliveries)")

    event.listen(Session, "before_flush", before_flush)
    try:
        yield
    finally:
        event.remove(Session, "before_flush", before_flush)


async def test_an_unchecked_delivery_changes_nothing_but_a_read_is_answered(
    plain_world: SlackWorld,
) -> None:
    """De-duplication fails closed for changes and approvals: before, a delivery that could
    not be checked counted as new, so a repeated one ran its change again."""
    world = plain_world
    one, two = queue_ids(2)
    planned = await result_of(world, f"purge mx1 {two} why=INC-14")
    plan = re.search(r"\*Plan\* `(p[0-9a-f]{10})`", planned)
    assert plan is not None, planned
    before = list(world.host_commands())
    with unrecorded_deliveries():
        for text, user in [
            (f"hold mx1 {one}", "U0OPS"),
            (f"requeue mx1 {one}", "U0OPS"),
            (f"flush mx1 {one}", "U0OPS"),
            ("flush mx1", "U0OPS"),
            (f"purge mx1 {one} why=INC-15", "U0OPS"),
            (f"approve {plan[1]}", "U0APPROVER"),
        ]:
            said = await reply_to(world, text, user)
            assert "did not deliver this request twice" in said, (text, said)
            assert any(words in said for words in NOTHING_CHANGED), (text, said)
        assert world.host_commands() == before, "a change reached a host unchecked"
        listed = await result_of(world, f"list mx1 id={one}")
        assert one in listed, listed
    assert len(world.host_commands()) > len(before)  # the read reached the host
    assert not any("postsuper" in c for c in world.host_commands()[len(before) :])
    rows = await world.audit_rows()
    refused = [(r.actor, r.detail["command"]) for r in rows if r.action == "command.refused"]
    assert refused == [
        *[("U0OPS", verb) for verb in ("hold", "requeue", "flush", "flush", "purge")],
        ("U0APPROVER", "approve"),
    ]
    assert not any(r.action == "remote.intent" for r in rows)
    planned_rows = [r for r in rows if r.action.startswith("plan.")]
    assert [r.action for r in planned_rows] == ["plan.created"]
