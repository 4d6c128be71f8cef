"""A stored plan cannot be changed between approval request and execution.

The plan hash is an HMAC under the audit key over everything the approver was shown (the
items and the preview among them), and the claim also compares it with the hash the
``plan.created`` audit event recorded. Someone who can write to the database but does not
hold the key can neither edit a plan and give it a matching hash, nor swap the hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.actions import rules as plans
from bot.app.pipeline import Outcome, handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.db.models import ActionPlan
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail
from helpers.fake_postfix import (
    APPROVER_A,
    REQUESTER,
    TEAM,
    FakePostfix,
    RaceHost,
    queue_lines,
    race_host,
)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[RaceHost]:
    async with race_host(tmp_path, FakePostfix(queue_lines(5, time.time()))) as opened:
        yield opened


@pytest.fixture
async def services(db_url: str, host: RaceHost) -> AsyncIterator[Services]:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=host.config)
    async with open_services(settings) as opened:
        yield opened


async def ask(services: Services, user: str, text: str) -> Outcome:
    return await handle(Request("slack", user, text, team_id=TEAM), services)


async def plan_id(services: Services) -> str:
    outcome = await ask(services, REQUESTER, "purge mx1 domain=gone.example why=INC-7")
    assert outcome.ok, outcome.reply.text
    return outcome.reply.text.split("Plan ", 1)[1].split(" ", 1)[0]


async def tamper(services: Services, pid: str, rehash: str, **values: Any) -> None:
    """Edit the stored plan and give it a new hash the way an attacker could."""
    async with services.sessions() as session, session.begin():
        plan = await session.get(ActionPlan, pid)
        assert plan is not None
        for name, value in values.items():
            setattr(plan, name, value)
        if rehash == "sha256":  # the scheme before the key: reproducible by anyone
            body = json.dumps({"id": plan.id, "items": plan.items}, sort_keys=True)
            plan.plan_hash = hashlib.sha256(body.encode()).hexdigest()
        elif rehash == "own-key":
            plan.plan_hash = plans.plan_hash(plan, AuditTrail(b"k" * 64))
        else:  # the real key (someone who stole it): the plan.created record still differs
            plan.plan_hash = plans.plan_hash(plan, services.audit)
        await session.execute(
            update(ActionPlan).where(ActionPlan.id == pid)
            .values(plan_hash=plan.plan_hash, **values)
        )  # fmt: skip


@pytest.mark.parametrize("rehash", ["sha256", "own-key", "stolen-key"])
@pytest.mark.parametrize("edit", ["items", "preview"])
async def test_an_edited_plan_is_refused_at_claim(
    services: Services, host: RaceHost, rehash: str, edit: str
) -> None:
    pid = await plan_id(services)
    async with services.sessions() as session:
        plan = await session.get(ActionPlan, pid)
        assert plan is not None
        items, preview = list(plan.items), dict(plan.preview)
    if edit == "items":
        await tamper(services, pid, rehash, items=items[:1])
    else:
        await tamper(services, pid, rehash, preview={**preview, "messages": 1})
    outcome = await ask(services, APPROVER_A, f"approve {pid}")
    assert not outcome.ok
    assert "is not the plan that was approved" in outcome.reply.text
    assert host.fake.changes == []  # postsuper never ran


async def test_an_untouched_plan_runs(services: Services, host: RaceHost) -> None:
    pid = await plan_id(services)
    outcome = await ask(services, APPROVER_A, f"approve {pid}")
    assert outcome.ok, outcome.reply.text
    assert len(host.fake.changes) == 1
