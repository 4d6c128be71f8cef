"""Group incidents: one rule on many hosts shares one incident row (host ``*``,
``group_key`` set), and the hosts' own incidents point at it (``group_id``).

A host joins the open group of its key in the poll's transaction (one INSERT wins when two
processes open the same group: the unique ``open_key`` ``group|KEY``). The group's state is
then settled by ``settle`` in a transaction of its own, after the members' changes are
committed, with the group row locked (``FOR UPDATE`` on PostgreSQL; SQLite has one writer):
whoever settles last sees every member's committed state, so the group resolves exactly
when its last open member has, and only the writer of a change posts about it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Incident

GROUP_HOST = "*"


def group_open_key(key: str) -> str:
    return f"group|{key}"


async def open_groups(session: AsyncSession) -> list[Incident]:
    stmt = select(Incident).where(Incident.group_key.is_not(None), Incident.state == "open")
    return list((await session.scalars(stmt)).all())


async def join(
    session: AsyncSession,
    key: str,
    kind: str,
    reason_class: str | None,
    now: float,
    replica: str,
    window: float,
) -> tuple[Incident, bool]:
    """The group of ``key`` a host's new incident joins: the open one, else the one that
    resolved within ``window`` (``settle`` reopens it), else a new one (True: this writer
    made it, and posts its root)."""
    found = await _open(session, key)
    if found is not None:
        return found, False
    recent = await _recent(session, key, now - window)
    if recent is not None:
        return recent, False
    row = Incident(
        host=GROUP_HOST,
        kind=kind,
        state="open",
        severity="warning",
        value=0.0,
        peak=0.0,
        threshold=0.0,
        detail={},
        version=1,
        opened_at=now,
        updated_at=now,
        created_by=replica,
        open_key=group_open_key(key),
        group_key=key,
        reason_class=reason_class,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        other = await _open(session, key)
        if other is None:
            raise
        return other, False
    return row, True


async def _open(session: AsyncSession, key: str) -> Incident | None:
    stmt = select(Incident).where(Incident.open_key == group_open_key(key))
    return (await session.scalars(stmt)).first()


async def _recent(session: AsyncSession, key: str, since: float) -> Incident | None:
    stmt = (
        select(Incident)
        .where(
            Incident.group_key == key,
            Incident.state == "resolved",
            Incident.resolved_at >= since,
        )
        .order_by(Incident.resolved_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def locked(session: AsyncSession, group_id: int) -> Incident | None:
    stmt = select(Incident).where(Incident.id == group_id).with_for_update()
    return (await session.scalars(stmt)).first()


async def members(session: AsyncSession, group: Incident) -> tuple[list[Incident], list[str]]:
    """The group's open member incidents, and the hosts that were in it since it (last)
    opened and are no longer."""
    stmt = select(Incident).where(Incident.group_id == group.id)
    rows = list((await session.scalars(stmt)).all())
    open_rows = [r for r in rows if r.state == "open"]
    still = {r.host for r in open_rows}
    gone = {
        r.host
        for r in rows
        if r.state == "resolved" and (r.resolved_at or 0) >= group.opened_at and r.host not in still
    }
    return open_rows, sorted(gone)


async def write(session: AsyncSession, group: Incident, values: dict[str, Any]) -> bool:
    """A conditional update of the group row on its version; True if it was made."""
    stmt = (
        update(Incident)
        .where(Incident.id == group.id, Incident.version == group.version)
        .values(version=group.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    try:
        async with session.begin_nested():
            result = await session.execute(stmt)
    except IntegrityError:  # reopening while another group of the key is open
        return False
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(group)
    return True


async def unposted(session: AsyncSession) -> list[Incident]:
    """Open incidents with no root message yet and no group to show them (muted when they
    opened, or their post failed)."""
    stmt = select(Incident).where(
        Incident.state == "open", Incident.root_ts.is_(None), Incident.group_id.is_(None)
    )
    return list((await session.scalars(stmt)).all())


async def posted(session: AsyncSession) -> list[Incident]:
    """Open incidents that have a root message."""
    stmt = select(Incident).where(Incident.state == "open", Incident.root_ts.is_not(None))
    return list((await session.scalars(stmt)).all())


async def claim(session: AsyncSession, row: Incident) -> bool:
    """Take the right to post ``row``'s root (one writer wins: the version moves)."""
    return await write(session, row, {})


async def get(session: AsyncSession, incident_id: int) -> Incident | None:
    return await session.get(Incident, incident_id)


PENDING = ""  # root_ts while one writer posts the root (claimed, not yet posted)


async def mark_pending(session: AsyncSession, ids: list[int]) -> None:
    """The writer that opened these incidents posts their roots: nobody else may."""
    if ids:
        stmt = (
            update(Incident)
            .where(Incident.id.in_(ids), Incident.root_ts.is_(None))
            .values(root_ts=PENDING)
            .execution_options(synchronize_session=False)
        )
        await session.execute(stmt)


async def claim_root(session: AsyncSession, incident_id: int) -> bool:
    """Take the posting of an unposted open incident's root (True: this writer posts)."""
    stmt = (
        update(Incident)
        .where(Incident.id == incident_id, Incident.root_ts.is_(None), Incident.state == "open")
        .values(root_ts=PENDING)
        .execution_options(synchronize_session=False)
    )
    return bool((await session.execute(stmt)).rowcount == 1)  # type: ignore[attr-defined]


async def set_root(session: AsyncSession, incident_id: int, channel: str, ts: str | None) -> None:
    """Record the posted root (``ts`` None: the post failed, someone may try again)."""
    stmt = (
        update(Incident)
        .where(Incident.id == incident_id, Incident.root_ts == PENDING)
        .values(channel_id=channel if ts else None, root_ts=ts)
        .execution_options(synchronize_session=False)
    )
    await session.execute(stmt)
