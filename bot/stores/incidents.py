"""The incident lifecycle: open, change, resolve, reopen within the cooldown.

``apply`` runs inside the poll's transaction and returns the changes it won. Every write is
conditional: a new incident is an INSERT that the unique ``open_key`` lets only one writer
make; every later change is ``UPDATE ... WHERE id = ? AND version = ?``. Only the writer of a
change posts about it, so no incident ever gets two root messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Incident
from bot.monitor.alert import Alert, Event
from bot.monitor.rules import Reading, level

GREW_BY = 0.25  # a note in the thread when the value grew 25 % since the last note


@dataclass(frozen=True)
class Policy:
    cooldown: float
    replica: str
    notes_every: float = 0.0  # a growth note in the thread at most this often


# Where a new incident goes: the id of the group incident it joins or folds into, or None.
Place = Callable[[Reading], Awaitable[int | None]]


async def _nowhere(_reading: Reading) -> int | None:
    return None


def open_key(host: str, kind: str) -> str:
    return f"{host}|{kind}"


async def open_incidents(session: AsyncSession, hosts: list[str]) -> dict[str, dict[str, Incident]]:
    """The open incidents of ``hosts`` (host -> kind -> row), read in one query.

    Read in the transaction that then moves them: the database, not a cache, says what is
    open, so a change made meanwhile by another process (an acknowledgement, a takeover)
    is seen, or makes the conditional write fail rather than be overwritten.
    """
    found: dict[str, dict[str, Incident]] = {}
    for start in range(0, len(hosts), 500):
        stmt = select(Incident).where(
            Incident.host.in_(hosts[start : start + 500]), Incident.state == "open"
        )
        for row in (await session.scalars(stmt)).all():
            found.setdefault(row.host, {})[row.kind] = row
    return found


async def apply(
    session: AsyncSession,
    host: str,
    readings: list[Reading],
    detail: dict[str, Any],
    now: float,
    policy: Policy,
    current: dict[str, Incident],
    place: Place = _nowhere,
) -> list[Alert]:
    """Move each rule's incident on ``host`` (``current``: its open ones) as its reading
    says; the changes won. A new incident is put where ``place`` says (a group)."""
    changes: list[Alert] = []
    for reading in readings:
        row = current.get(reading.kind)
        if row is None:
            change = await _maybe_open(session, host, reading, detail, now, policy, place)
        else:
            change = await _move(session, row, reading, detail, now, policy)
        if change is not None:
            changes.append(change)
    return changes


async def _maybe_open(
    session: AsyncSession,
    host: str,
    reading: Reading,
    detail: dict[str, Any],
    now: float,
    policy: Policy,
    place: Place,
) -> Alert | None:
    severity = level(reading.value, reading.threshold, None)
    if severity is None:
        return None
    recent = await _recently_resolved(session, host, reading.kind, now - policy.cooldown)
    threshold = _threshold(reading, severity)
    group_id = await place(reading)
    if recent is not None:
        values = _open_values(host, reading, severity, threshold, detail, now)
        values["peak"] = max(recent.peak, reading.value)
        values["group_id"] = group_id
        return await _write(session, recent, values, "reopened", None)
    row = Incident(
        host=host,
        kind=reading.kind,
        state="open",
        severity=severity,
        value=reading.value,
        peak=reading.value,
        threshold=threshold,
        detail=detail,
        version=1,
        opened_at=now,
        updated_at=now,
        created_by=policy.replica,
        notified_value=reading.value,
        notified_severity=severity,
        open_key=open_key(host, reading.kind),
        group_id=group_id,
        noted_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None  # another process opened it: it posts, we do not
    return Alert.of(row, "opened")


def _open_values(
    host: str,
    reading: Reading,
    severity: str,
    threshold: float,
    detail: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    return {
        "state": "open",
        "open_key": open_key(host, reading.kind),
        "severity": severity,
        "value": reading.value,
        "threshold": threshold,
        "detail": detail,
        "updated_at": now,
        "resolved_at": None,
        "notified_value": reading.value,
        "notified_severity": severity,
        "noted_at": now,
    }


async def _recently_resolved(
    session: AsyncSession, host: str, kind: str, since: float
) -> Incident | None:
    stmt = (
        select(Incident)
        .where(
            Incident.host == host,
            Incident.kind == kind,
            Incident.state == "resolved",
            Incident.resolved_at >= since,
        )
        .order_by(Incident.resolved_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def _move(
    session: AsyncSession,
    row: Incident,
    reading: Reading,
    detail: dict[str, Any],
    now: float,
    policy: Policy,
) -> Alert | None:
    severity = level(reading.value, reading.threshold, row.severity)
    values: dict[str, Any] = {
        "value": reading.value,
        "peak": max(row.peak, reading.value),
        "updated_at": now,
        "detail": detail,
    }
    event: Event | None = None
    if severity is None:
        values |= {"state": "resolved", "open_key": None, "resolved_at": now}
        event = "resolved"
    elif severity != row.severity:
        event = "escalated" if severity == "critical" else "deescalated"
        values |= {"severity": severity, "threshold": _threshold(reading, severity)}
    elif _grew(row, reading.value):
        # a note at most every ``notes_every``; between notes the root shows the numbers
        due = now - (row.noted_at or row.opened_at) >= policy.notes_every
        event = "grew" if due else "updated"
    if event is not None:
        values |= {"notified_value": reading.value, "notified_severity": severity}
        if event != "updated":
            values["noted_at"] = now
    return await _write(session, row, values, event, row.severity)


def _grew(row: Incident, value: float) -> bool:
    last = row.notified_value if row.notified_value is not None else row.value
    return last > 0 and value >= last * (1 + GREW_BY) and value >= row.peak


def _threshold(reading: Reading, severity: str) -> float:
    t = reading.threshold
    return t.critical if severity == "critical" else t.warning


async def _write(
    session: AsyncSession,
    row: Incident,
    values: dict[str, Any],
    event: Event | None,
    previous: str | None,
) -> Alert | None:
    """A conditional update on the row's version; the change if this writer won it."""
    version = row.version
    stmt = (
        update(Incident)
        .where(Incident.id == row.id, Incident.version == version)
        .values(version=version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    try:
        async with session.begin_nested():  # reopening may meet a new open incident
            result = await session.execute(stmt)
    except IntegrityError:
        return None
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    await session.refresh(row)
    return Alert.of(row, event, previous) if event is not None else None


async def set_root(session: AsyncSession, incident_id: int, channel: str, ts: str) -> None:
    stmt = (
        update(Incident)
        .where(Incident.id == incident_id, Incident.root_ts.is_(None))
        .values(channel_id=channel, root_ts=ts)
    )
    await session.execute(stmt)


async def load(session: AsyncSession, incident_id: int) -> Incident | None:
    return await session.get(Incident, incident_id)


async def change(session: AsyncSession, row: Incident, values: dict[str, Any]) -> bool:
    """A conditional update of ``row`` on its version (acknowledge, snooze); True if made.
    ``row`` is refreshed."""
    stmt = (
        update(Incident)
        .where(Incident.id == row.id, Incident.version == row.version)
        .values(version=row.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if (await session.execute(stmt)).rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(row)
    return True
