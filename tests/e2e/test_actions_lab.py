"""Queue actions against the real lab: plans, the two-person rule, and exact execution.

Each test injects its own marked messages (tests/helpers/labmail.py) so the shared lab queue
ends as it began; the oracle is `postqueue -j` run on the lab host (this machine).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.app.pipeline import Outcome, handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.db.models import ActionPlan, AuditEvent
from bot.settings import Settings
from bot.stores import audit
from helpers.labbot import LAB_CONFIG
from helpers.labmail import ids_from, inject, new_sender, queue, remove

pytestmark = pytest.mark.lab
# The requester may approve plans in general: only the two-person rule stops them here.
OPERATOR, APPROVER, ADMIN, VIEWER = "U0OPERATOR", "U0APPROVER", "U0ADMIN", "U0VIEWER"


@pytest.fixture
async def services(db_url: str, lab: dict[str, object]) -> AsyncIterator[Services]:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=LAB_CONFIG)
    async with open_services(settings) as opened:
        yield opened


async def ask(services: Services, user: str, text: str) -> Outcome:
    request = Request("slack", user, text, team_id="T0LAB", channel_id="C0OPS")
    return await handle(request, services)


def plan_id(outcome: Outcome) -> str:
    match = re.search(r"Plan (p[0-9a-f]{10})", outcome.reply.text)
    assert match, outcome.reply.text
    return match.group(1)


async def test_purge_needs_another_person_and_deletes_exactly_the_plan(
    services: Services,
) -> None:
    sender = new_sender()
    planned = inject(sender, 5)
    others_before = {str(m["queue_id"]) for m in queue()} - planned
    try:
        asked = await ask(services, APPROVER, f'purge lab sender={sender} why="INC-1 test"')
        assert asked.ok, asked.reply.text
        pid = plan_id(asked)
        assert "5 messages, waiting for approval" in asked.reply.text
        buttons = next(b for b in asked.reply.blocks if b["type"] == "actions")["elements"]
        assert [b["value"] for b in buttons] == [f"approve {pid}", f"deny {pid}"]

        late = inject(sender, 2)  # arrive after the preview: not in the plan
        own = await ask(services, APPROVER, f"approve {pid}")
        assert not own.ok
        assert "another person must approve" in own.reply.text
        assert ids_from(sender) == planned | late  # nothing ran

        approved = await ask(services, ADMIN, f"approve {pid}")
        assert approved.ok, approved.reply.text
        assert "Deleted 5 of 5 planned messages; Postfix reported 5." in approved.reply.text
        assert ids_from(sender) == late  # exactly the planned IDs are gone
        after = {str(m["queue_id"]) for m in queue()}
        assert others_before <= after  # nobody else's mail was touched
    finally:
        remove(ids_from(sender))

    async with services.sessions() as session:
        plan = await session.get(ActionPlan, pid)
        assert plan is not None
        assert plan.status == "done"
        assert {i["id"] for i in plan.items} == planned
        actions = (
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.detail["plan"].as_string() == pid)
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert actions == ["plan.created", "plan.approved", "plan.claimed", "plan.done"]
    assert (await audit.verify(services.sessions)).ok


async def test_viewer_cannot_purge_and_nothing_runs(services: Services) -> None:
    sender = new_sender()
    planned = inject(sender, 1)
    try:
        refused = await ask(services, VIEWER, f'purge lab sender={sender} why="x"')
        assert not refused.ok
        assert "You may not run `purge`" in refused.reply.text
        assert ids_from(sender) == planned
    finally:
        remove(ids_from(sender))


async def test_hold_and_release_run_at_once_on_the_selection(services: Services) -> None:
    sender = new_sender()
    planned = inject(sender, 3)
    try:
        held = await ask(services, OPERATOR, f"hold lab sender={sender}")
        assert held.ok, held.reply.text
        assert "Put on hold 3 of 3 selected messages; Postfix reported 3." in held.reply.text
        assert ids_from(sender, "hold") == planned
        released = await ask(services, OPERATOR, f"release lab sender={sender}")
        assert "Released 3 of 3 selected messages" in released.reply.text
        assert ids_from(sender, "hold") == set()
    finally:
        remove(ids_from(sender))


async def test_denied_plan_changes_nothing(services: Services) -> None:
    sender = new_sender()
    planned = inject(sender, 2)
    try:
        pid = plan_id(await ask(services, OPERATOR, f'purge lab sender={sender} why="oops"'))
        denied = await ask(services, APPROVER, f"deny {pid} wrong sender")
        assert denied.ok
        assert "denied" in denied.reply.text
        again = await ask(services, APPROVER, f"approve {pid}")
        assert not again.ok
        assert "is denied; nothing was changed" in again.reply.text
        late = await ask(services, ADMIN, f"approve {pid}")
        assert not late.ok
        assert "is denied; nothing was changed" in late.reply.text
        assert ids_from(sender) == planned
    finally:
        remove(ids_from(sender))
