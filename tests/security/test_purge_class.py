"""A purge's class follows from what it deletes, not from how it is worded.

``ALL deferred``, a filter that selects only by queue or age, more messages than
``actions.purge.max_messages``, or at least ``max_share`` of the queues selected from: each
is a ``purge_all`` plan, which only the ``purge_all`` approvers (admins by default) may
approve. On main before this, only the literal words ``ALL deferred`` made one, so a plain
approver could approve ``purge mx2 queue=deferred``, which deletes the same messages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app.pipeline import Outcome, handle
from bot.context import Request
from bot.inventory import Access, ActionRule, Grant
from helpers.demo_world import World, demo_world

TEAM = "T0LAB"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="operator", members=["U0ASKER"]),
        Grant(role="approver", members=["U0APPROVER"]),
        Grant(role="admin", members=["U0ADMIN"]),
    ],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with demo_world(db_url, tmp_path, ACCESS) as world:
        yield world


async def ask(world: World, user: str, text: str) -> Outcome:
    return await handle(Request("slack", user, text, team_id=TEAM, channel_id="C0OPS"),
                        world.services)  # fmt: skip


def plan_of(outcome: Outcome) -> tuple[str, str]:
    """The plan id and class a plan reply names."""
    assert outcome.ok, outcome.reply.text
    found = re.search(r"Plan (p[0-9a-f]{10}) \(hash [0-9a-f]+\), (\w+):", outcome.reply.text)
    assert found is not None, outcome.reply.text
    return found[1], found[2]


@pytest.mark.parametrize(
    ("selection", "says"),
    [
        ("ALL deferred", "the whole deferred queue"),
        ("queue=deferred", "only by queue or age"),
        ("older=1s", "only by queue or age"),
        ("queue=deferred newer=30d", "only by queue or age"),
        ("domain=partner.example", "% of the 408 messages in the queues"),  # most of mx2 deferred
    ],
)
async def test_whole_queue_purges_need_an_admin_however_worded(
    world: World, selection: str, says: str
) -> None:
    asked = await ask(world, "U0ASKER", f"purge mx2 {selection} why=INC-1")
    plan, cls = plan_of(asked)
    assert cls == "purge_all"
    assert "Needs a purge_all approver: it " in asked.reply.text
    assert says in asked.reply.text
    refused = await ask(world, "U0APPROVER", f"approve {plan}")
    assert not refused.ok
    assert "may not approve `purge_all` plans on mx2" in refused.reply.text
    approved = await ask(world, "U0ADMIN", f"approve {plan}")
    assert approved.ok, approved.reply.text
    assert "Deleted" in approved.reply.text


async def test_a_narrow_purge_stays_an_ordinary_purge(world: World) -> None:
    plan, cls = plan_of(await ask(world, "U0ASKER", "purge mx2 domain=bank.example why=INC-2"))
    assert cls == "purge"
    approved = await ask(world, "U0APPROVER", f"approve {plan}")
    assert approved.ok, approved.reply.text


async def test_more_than_max_messages_needs_an_admin(db_url: str, tmp_path: Path) -> None:
    async with demo_world(db_url, tmp_path, ACCESS) as world:
        actions = world.services.inventory.config.actions
        actions["purge"] = ActionRule(approval=True, max_messages=50, max_share=1.0)
        asked = await ask(world, "U0ASKER", "purge mx2 domain=secure.example why=INC-3")
        plan, cls = plan_of(asked)
        assert cls == "purge_all"
        assert "more than purge's limit of 50" in asked.reply.text
        refused = await ask(world, "U0APPROVER", f"approve {plan}")
        assert "may not approve `purge_all`" in refused.reply.text
