"""The audit trail: an append-only, hash-chained table, and its verifier.

Each row's ``hash`` is SHA-256 over the canonical JSON of its fields plus the previous
row's hash, so editing, deleting or reordering any row breaks the chain from there on.
``append`` is called inside the caller's transaction: no audit row, no state change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import AuditEvent

GENESIS = "0" * 64
APPEND_ATTEMPTS = 20


@dataclass(frozen=True)
class AuditRecord:
    source: str
    actor: str
    action: str
    team_id: str | None = None
    host: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def row_hash(row: AuditEvent) -> str:
    body = {
        "seq": row.seq,
        "at": _utc(row.at).isoformat(timespec="microseconds"),
        "request_id": row.request_id,
        "source": row.source,
        "actor": row.actor,
        "team_id": row.team_id,
        "action": row.action,
        "host": row.host,
        "detail": row.detail,
        "prev_hash": row.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _last(session: AsyncSession) -> tuple[int, str]:
    stmt = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    row = (await session.execute(stmt)).first()
    return (row.seq, row.hash) if row else (0, GENESIS)


async def append(session: AsyncSession, record: AuditRecord) -> AuditEvent:
    """Add ``record`` at the end of the chain inside the session's open transaction.

    A concurrent writer that took the same place makes the flush fail on the unique
    ``seq``/``prev_hash``; the savepoint is rolled back and the append retried on top.
    """
    for _ in range(APPEND_ATTEMPTS):
        seq, prev = await _last(session)
        row = AuditEvent(
            seq=seq + 1,
            at=datetime.now(UTC),
            request_id=record.request_id,
            source=record.source,
            actor=record.actor,
            team_id=record.team_id,
            action=record.action,
            host=record.host,
            detail=record.detail or {},
            prev_hash=prev,
        )
        row.hash = row_hash(row)
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return row
    raise RuntimeError("audit chain: too much contention, gave up appending")


@dataclass(frozen=True)
class VerifyResult:
    rows: int
    first_bad_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


async def iter_events(
    sessions: async_sessionmaker[AsyncSession], batch: int = 1000
) -> AsyncIterator[AuditEvent]:
    after = 0
    while True:
        async with sessions() as session:
            stmt = (
                select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq)
            ).limit(batch)
            rows = list((await session.scalars(stmt)).all())
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq


async def verify(sessions: async_sessionmaker[AsyncSession]) -> VerifyResult:
    """Walk the chain in order; name the first row whose content or link is wrong."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    async for row in iter_events(sessions):
        problem = _check(row, expected_prev, expected_seq)
        if problem:
            return VerifyResult(count, row.id, problem)
        expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
    return VerifyResult(count)


def _check(row: AuditEvent, expected_prev: str, expected_seq: int) -> str | None:
    if row.seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {row.seq} (a row was deleted)"
    if row.prev_hash != expected_prev:
        return "link broken: prev_hash does not match the previous row's hash"
    if row_hash(row) != row.hash:
        return "content changed: the row's hash does not match its fields"
    return None
