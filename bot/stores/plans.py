"""``action_plans`` and ``plan_decisions``: stored plans and their compare-and-set steps.

Every step is ``UPDATE action_plans ... WHERE id = :id AND status = :expected`` (and, where
it matters, ``expires_at > now()`` on the database clock) in the same transaction as the
audit event the caller builds from the row (``event``): two clicks, two approvers or two
replicas race on that write, exactly one wins and the others change nothing. The rules
(who may decide, what runs, what the events say) are ``bot.actions.approvals``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ActionPlan, AuditEvent, PlanDecision
from bot.stores import audit

Sessions = async_sessionmaker[AsyncSession]
Event = Callable[[ActionPlan], audit.AuditRecord]
Decisions = list[tuple[str, str]]  # (actor, "approve" | "deny"), in order
OPEN = ("pending", "approved")
UNSETTLED = ("pending", "approved", "executing", "unknown")


class AlreadyDecided(Exception):
    """This person decided on this plan before."""


class Missing(Exception):
    """No plan has this id."""


async def db_now(session: AsyncSession) -> datetime:
    """The database's clock (UTC): expiry is judged by one clock for every replica."""
    value = (await session.execute(select(func.now()))).scalar_one()
    if isinstance(value, str):  # SQLite: 'YYYY-MM-DD HH:MM:SS'
        value = datetime.fromisoformat(value)
    return _utc(value)


async def now(sessions: Sessions) -> datetime:
    async with sessions() as session:
        return await db_now(session)


async def create(
    sessions: Sessions, build: Callable[[datetime], ActionPlan], event: Event
) -> ActionPlan:
    """Store the plan ``build`` makes at the database's time, with its event."""
    async with sessions() as session, session.begin():
        plan = build(await db_now(session))
        session.add(plan)
        await audit.append(session, event(plan))
    return plan


async def load(sessions: Sessions, plan_id: str) -> tuple[ActionPlan, Decisions]:
    async with sessions() as session:
        return await _load(session, plan_id)


async def _load(session: AsyncSession, plan_id: str) -> tuple[ActionPlan, Decisions]:
    plan = await session.get(ActionPlan, plan_id, populate_existing=True)
    if plan is None:
        raise Missing(plan_id)
    stmt = (
        select(PlanDecision.actor, PlanDecision.decision)
        .where(PlanDecision.plan_id == plan_id)
        .order_by(PlanDecision.id)
    )
    return plan, [(a, d) for a, d in (await session.execute(stmt)).all()]


async def decide(
    sessions: Sessions,
    plan_id: str,
    who: tuple[str, str | None],
    decision: str,
    event: Callable[[ActionPlan, str], audit.AuditRecord],
) -> str | None:
    """Record ``who``'s (user, team) decision and move the plan on, if it is still pending
    and not expired; its new status, or None (nothing changed). Raises ``AlreadyDecided``."""
    try:
        async with sessions() as session, session.begin():
            plan, _ = await _load(session, plan_id)
            row = PlanDecision(plan_id=plan_id, actor=who[0], team_id=who[1],
                               decision=decision, at=await db_now(session))  # fmt: skip
            try:
                async with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                raise AlreadyDecided(plan_id) from None
            status = await _transition(session, plan_id, decision)
            if status is None:
                raise _NotPending  # rolls the decision back with the transaction
            await audit.append(session, event(plan, status))
    except _NotPending:
        return None
    return status


class _NotPending(Exception):
    pass


async def _transition(session: AsyncSession, plan_id: str, decision: str) -> str | None:
    pending = (
        (ActionPlan.id == plan_id)
        & (ActionPlan.status == "pending")
        & (ActionPlan.expires_at > func.now())
    )
    if decision == "deny":
        values: dict[str, Any] = {"status": "denied", "decided_at": func.now()}
    else:
        enough = ActionPlan.approvals + 1 >= ActionPlan.approvals_needed
        values = {
            "approvals": ActionPlan.approvals + 1,
            "status": case((enough, "approved"), else_="pending"),
            "decided_at": case((enough, func.now()), else_=None),
        }
    stmt = update(ActionPlan).where(pending).values(**values).returning(ActionPlan.status)
    row = (await session.execute(stmt.execution_options(synchronize_session=False))).first()
    return None if row is None else str(row[0])


async def _move(
    session: AsyncSession, plan_id: str, where: ColumnElement[bool], values: dict[str, Any]
) -> bool:
    stmt = (
        update(ActionPlan)
        .where((ActionPlan.id == plan_id) & where)
        .values(**values)
        .returning(ActionPlan.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def expire(sessions: Sessions, plan_id: str, event: Event) -> bool:
    """An open plan past its expiry becomes ``expired``; True if this call did it."""
    async with sessions() as session, session.begin():
        due = ActionPlan.status.in_(OPEN) & (ActionPlan.expires_at <= func.now())
        if not await _move(session, plan_id, due, {"status": "expired"}):
            return False
        plan, _ = await _load(session, plan_id)
        await audit.append(session, event(plan))
    return True


async def claim(
    sessions: Sessions,
    plan_id: str,
    replica: str,
    check: Callable[[ActionPlan, dict[str, Any] | None], None],
    event: Event,
) -> ActionPlan | None:
    """approved -> executing for ``replica``, if still valid; the plan, or None. ``check``
    sees the plan and its ``plan.created`` event's detail and may raise, which rolls the
    claim back."""
    async with sessions() as session, session.begin():
        valid = (ActionPlan.status == "approved") & (ActionPlan.expires_at > func.now())
        values = {"status": "executing", "claimed_by": replica, "claimed_at": func.now()}
        if not await _move(session, plan_id, valid, values):
            return None
        plan, _ = await _load(session, plan_id)
        created = await session.scalar(
            select(AuditEvent.detail)
            .where(AuditEvent.request_id == plan.request_id, AuditEvent.action == "plan.created")
            .order_by(AuditEvent.seq)
            .limit(1)
        )
        check(plan, created)
        await audit.append(session, event(plan))
    return plan


async def finish(
    sessions: Sessions,
    plan_id: str,
    replica: str,
    status: str,
    result: dict[str, Any],
    event: Callable[[ActionPlan, bool], audit.AuditRecord],
) -> bool:
    """executing (claimed by ``replica``) -> ``status``; the event is written either way
    (``event(plan, recorded)``), so what a run did is never lost."""
    async with sessions() as session, session.begin():
        mine = (ActionPlan.status == "executing") & (ActionPlan.claimed_by == replica)
        values = {"status": status, "result": result, "finished_at": func.now()}
        recorded = await _move(session, plan_id, mine, values)
        plan, _ = await _load(session, plan_id)
        await audit.append(session, event(plan, recorded))
    return recorded


async def mark_unknown(
    sessions: Sessions, plan_id: str, result: dict[str, Any], event: Event
) -> bool:
    """executing -> unknown (the replica that claimed it is gone): never run again."""
    async with sessions() as session, session.begin():
        values = {"status": "unknown", "finished_at": func.now(), "result": result}
        if not await _move(session, plan_id, ActionPlan.status == "executing", values):
            return False
        plan, _ = await _load(session, plan_id)
        await audit.append(session, event(plan))
    return True


async def ids(sessions: Sessions, *conditions: ColumnElement[bool]) -> list[str]:
    async with sessions() as session:
        stmt = select(ActionPlan.id).where(*conditions).order_by(ActionPlan.created_at)
        return list((await session.scalars(stmt)).all())


async def stale(
    sessions: Sessions, lease: float, before_start: tuple[str, datetime] | None
) -> list[str]:
    """Executing plans whose claim is older than ``lease`` seconds, or (``before_start``:
    a replica and when its process started) were claimed by that replica before then."""
    cutoff = await now(sessions) - timedelta(seconds=lease)
    executing = ActionPlan.status == "executing"
    found = await ids(sessions, executing, ActionPlan.claimed_at < cutoff)
    if before_start is None:
        return found
    replica, started = before_start
    # Compared here, not in SQL: SQLite keeps CURRENT_TIMESTAMP's claim times as text to the
    # second, which sorts before the same second written with its fraction.
    async with sessions() as session:
        claims = (
            await session.execute(
                select(ActionPlan.id, ActionPlan.claimed_at).where(
                    executing, ActionPlan.claimed_by == replica
                )
            )
        ).all()
    mine = [plan_id for plan_id, at in claims if at is not None and _utc(at) < started]
    return found + [plan_id for plan_id in mine if plan_id not in found]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


async def open_ids(sessions: Sessions) -> list[str]:
    return await ids(sessions, ActionPlan.status.in_(OPEN))


async def approved_ids(sessions: Sessions) -> list[str]:
    return await ids(sessions, ActionPlan.status == "approved")


async def listing(
    sessions: Sessions, hosts: list[str], window: timedelta, finished_too: bool, limit: int
) -> tuple[list[ActionPlan], datetime]:
    """Plans on ``hosts`` made within ``window`` (unsettled ones only unless
    ``finished_too``), newest first, and the database's time."""
    async with sessions() as session:
        at = await db_now(session)
        stmt = select(ActionPlan).where(
            ActionPlan.created_at > at - window, ActionPlan.host.in_(hosts)
        )
        if not finished_too:
            stmt = stmt.where(ActionPlan.status.in_(UNSETTLED))
        found = await session.scalars(stmt.order_by(ActionPlan.created_at.desc()).limit(limit))
        return list(found.all()), at


async def channel_of(sessions: Sessions, plan_id: str) -> str | None:
    async with sessions() as session:
        stmt = select(ActionPlan.channel_id).where(ActionPlan.id == plan_id)
        return (await session.execute(stmt)).scalar_one_or_none()
