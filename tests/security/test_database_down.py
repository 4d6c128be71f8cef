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
  change as "outcome unknown".
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

from bot.db.models import AuditEvent
from bot.demo import SIZES, demo_queue
from bot.inventory import Access, Grant
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


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_no_intent_record_no_change(world: SlackWorld) -> None:
    (one,) = queue_ids(1)
    with failing("remote.intent"):
        said = await reply_to(world, f"hold mx1 {one}")
    assert "could not write to its audit trail" in said
    assert "nothing was changed there" in said
    assert not any("postsuper" in c for c in world.host_commands())
    rows = await world.audit_rows()
    assert [r.action for r in rows][-1] == "command.refused"


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_a_missing_outcome_is_told_and_shown_as_unknown(world: SlackWorld) -> None:
    """The database goes away after the change ran: neither its outcome nor the command's
    record can be written."""
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
