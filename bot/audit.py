"""The audit trail: an append-only, hash-chained table, and its verifier.

Each row's ``hash`` is SHA-256 over the canonical JSON of its fields plus the previous
row's hash, so editing, deleting or reordering any row breaks the chain from there on.
``append`` is called inside the caller's transaction: no audit row, no state change.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TextIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import AuditEvent
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.context import Context

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
    """SHA-256 over the row as ``as_dict`` gives it, without its ``id`` and ``hash``."""
    body = {k: v for k, v in as_dict(row).items() if k not in ("id", "hash")}
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


async def write(sessions: async_sessionmaker[AsyncSession], record: AuditRecord) -> int:
    """Append ``record`` in a transaction of its own, committed on return; its ``seq``."""
    async with sessions() as session, session.begin():
        row = await append(session, record)
    return row.seq


@dataclass(frozen=True)
class RequestJournal:
    """Intents and outcomes of one request's queue changes, as audit events of their own
    (``remote.intent`` / ``remote.outcome``), each committed before the call returns."""

    sessions: async_sessionmaker[AsyncSession]
    source: str
    actor: str
    team_id: str | None
    request_id: str | None
    base: dict[str, Any]

    @classmethod
    def of(cls, ctx: Context) -> RequestJournal:
        request = ctx.request
        base = {"channel_id": request.channel_id, "message_link": request.message_link,
                "replica": ctx.services.replica}  # fmt: skip
        return cls(ctx.services.sessions, request.source, request.user_id, request.team_id,
                   request.request_id, base)  # fmt: skip

    async def intent(self, host: str, detail: dict[str, Any]) -> int:
        return await write(self.sessions, self._record("remote.intent", host, detail))

    async def outcome(self, host: str, detail: dict[str, Any]) -> None:
        await write(self.sessions, self._record("remote.outcome", host, detail))

    def _record(self, action: str, host: str, detail: dict[str, Any]) -> AuditRecord:
        return AuditRecord(source=self.source, actor=self.actor, action=action,
                           team_id=self.team_id, host=host, request_id=self.request_id,
                           detail={**self.base, **detail})  # fmt: skip


@dataclass(frozen=True)
class VerifyResult:
    rows: int
    first_bad_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


async def iter_events(
    sessions: async_sessionmaker[AsyncSession],
    batch: int = 1000,
    since: datetime | None = None,
) -> AsyncIterator[AuditEvent]:
    """Every event in chain order (from ``since``, if given), read ``batch`` rows at a time,
    each batch in its own short session."""
    after = 0
    while True:
        async with sessions() as session:
            stmt = select(AuditEvent).where(AuditEvent.seq > after)
            if since is not None:
                stmt = stmt.where(AuditEvent.at >= since)
            rows = list((await session.scalars(stmt.order_by(AuditEvent.seq).limit(batch))).all())
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


# -- reading and export ------------------------------------------------------------------------

EXPORT_FIELDS = (
    "seq", "id", "at", "request_id", "source", "actor", "team_id", "action", "host",
    "detail", "prev_hash", "hash",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_dict(row: AuditEvent) -> dict[str, Any]:
    """One event as plain data, exactly as hashed (``at`` in UTC, ISO 8601)."""
    return {
        "seq": row.seq,
        "id": row.id,
        "at": _utc(row.at).isoformat(timespec="microseconds"),
        "request_id": row.request_id,
        "source": row.source,
        "actor": row.actor,
        "team_id": row.team_id,
        "action": row.action,
        "host": row.host,
        "detail": row.detail,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def export(
    sessions: async_sessionmaker[AsyncSession],
    out: TextIO,
    fmt: Literal["csv", "jsonl"],
    since: datetime | None = None,
    batch: int = 1000,
) -> int:
    """Write events in chain order as CSV (with a header) or JSON lines; returns the count.

    JSON lines are exact (a verifier can recompute every hash); CSV is for spreadsheets:
    ``detail`` is a JSON cell and formula-like text is prefixed with ``'``.
    """
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(EXPORT_FIELDS)
    count = 0
    async for row in iter_events(sessions, batch, since):
        data = as_dict(row)
        if writer is not None:
            writer.writerow([_csv_cell(data[f]) for f in EXPORT_FIELDS])
        else:
            out.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


async def recent(
    sessions: async_sessionmaker[AsyncSession],
    since: datetime,
    hosts: list[str] | None,
    limit: int,
) -> tuple[list[AuditEvent], int]:
    """The newest ``limit`` events since ``since`` (on ``hosts``, if given), newest first,
    and how many matched in all."""
    where = [AuditEvent.at >= since]
    if hosts is not None:
        where.append(AuditEvent.host.in_(hosts))
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
        stmt = select(AuditEvent).where(*where).order_by(AuditEvent.seq.desc()).limit(limit)
        rows = list((await session.scalars(stmt)).all())
    return rows, int(total or 0)


_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = 366 * 86400


def parse_duration(text: str) -> int | None:
    """``30m``, ``6h``, ``7d`` in seconds (at most a year); None if it is not one."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    seconds = int(match[1]) * _UNITS[match[2]]
    return seconds if seconds <= MAX_WINDOW else None


def since_start(text: str, now: datetime) -> datetime:
    """A window start from a duration (``24h``) or an ISO 8601 date/time (UTC if no zone)."""
    seconds = parse_duration(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise UsageError(
            f"since `{text[:40]}` is neither a duration (30m, 24h, 7d; at most 366d) "
            "nor an ISO date/time (2025-01-31 or 2025-01-31T08:00)."
        ) from None
