"""The audit trail: an append-only, hash-chained table, and its verifier.

Each row's ``hash`` is an HMAC-SHA256, under a key kept outside the database
(``bot.stores.audit_key``), over the canonical JSON of its fields plus the previous row's hash:
editing, deleting or reordering any row breaks the chain from there on, and without the key
nobody can re-hash it. After every commit that appended rows, the new head of the chain is
checkpointed outside the database, so rows removed from the end are found too. (The
migration that introduced the key verified the older plain SHA-256 chain and re-hashed it
under the key.)

``append`` is called inside the caller's transaction: no audit row, no state change. The
session must come from ``bot.db.session.make_sessionmaker(engine, trail)``: without a trail
there is no key, and ``append`` refuses.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TextIO

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.db.models import AuditEvent as AuditEvent  # the row type readers get
from bot.errors import UsageError
from bot.stores.audit_key import AuditTrail
from bot.text import DURATION_FORMS
from bot.text import parse_duration as text_duration

if TYPE_CHECKING:
    from bot.context import Context

log = logging.getLogger(__name__)
GENESIS = "0" * 64
APPEND_ATTEMPTS = 20
TRAIL = "audit_trail"  # session.info key: the AuditTrail of the session's factory
HEADS = "audit_heads"  # session.info key: (seq, hash) appended in the open transaction


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


def canonical(row: AuditEvent) -> bytes:
    """The row as ``as_dict`` gives it, without its ``id`` and ``hash``, as canonical JSON:
    what its hash covers."""
    body = {k: v for k, v in as_dict(row).items() if k not in ("id", "hash")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: AuditEvent, trail: AuditTrail) -> str:
    """HMAC-SHA256 under the trail's key over ``canonical(row)``."""
    return trail.mac(canonical(row))


def trail_of(session: AsyncSession | Session) -> AuditTrail:
    trail = session.info.get(TRAIL)
    if not isinstance(trail, AuditTrail):
        raise RuntimeError(
            "this database session has no audit key: make its factory with "
            "make_sessionmaker(engine, trail)"
        )
    return trail


@event.listens_for(Session, "after_commit")
def _checkpoint(session: Session) -> None:
    """After a commit that appended audit rows, checkpoint the new head outside the DB."""
    heads = session.info.pop(HEADS, None)
    if not heads:
        return
    seq, row_hash_ = max(heads)
    try:
        trail_of(session).record_head(seq, row_hash_)
    except OSError as exc:
        log.error("audit head %d not checkpointed (%s): removal of the newest rows would go "
                  "unnoticed until it is", seq, exc)  # fmt: skip


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(HEADS, None)


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
        row.hash = row_hash(row, trail_of(session))
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        session.info.setdefault(HEADS, []).append((row.seq, row.hash))
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
    first_bad_id: int | None = None  # None with a problem: rows are missing at the end
    problem: str | None = None
    checkpoints: int = 0  # checkpointed heads compared with the chain

    @property
    def ok(self) -> bool:
        return self.problem is None


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


async def verify(
    sessions: async_sessionmaker[AsyncSession],
    checkpoints: Iterable[tuple[int, str]] = (),
) -> VerifyResult:
    """Walk the chain in order and name the first row whose content or link is wrong, then
    hold it against the checkpointed heads: a head the chain no longer reaches means rows
    were removed from its end (or all of them)."""
    async with sessions() as session:
        trail = trail_of(session)
    heads: dict[int, str] = dict(checkpoints)
    expected_prev, expected_seq, count = GENESIS, 1, 0
    async for row in iter_events(sessions):
        problem = _check(row, expected_prev, expected_seq, trail)
        if problem is None and row.seq in heads and heads[row.seq] != row.hash:
            problem = (f"row seq {row.seq} is not the row that was checkpointed when it was "
                       "written: it was rewritten")  # fmt: skip
        if problem:
            return VerifyResult(count, row.id, problem, len(heads))
        expected_prev, expected_seq, count = row.hash, row.seq + 1, count + 1
    last = expected_seq - 1
    newest = max(heads, default=0)
    if newest > last:
        return VerifyResult(count, None, _missing(last, newest, heads[newest]), len(heads))
    return VerifyResult(count, None, None, len(heads))


def _check(row: AuditEvent, expected_prev: str, expected_seq: int, trail: AuditTrail) -> str | None:
    if row.seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {row.seq} (a row was deleted)"
    if row.prev_hash != expected_prev:
        return "link broken: prev_hash does not match the previous row's hash"
    if row_hash(row, trail) != row.hash:
        return "content changed: the row's hash does not match its fields (or the key differs)"
    return None


def _missing(last: int, newest: int, head: str) -> str:
    if last == 0:
        return (f"the audit table is empty, but the checkpoint names seq {newest} "
                f"(hash {head[:12]}…): every audit row was removed")  # fmt: skip
    return (f"rows {last + 1}..{newest} are missing from the end: the chain stops at seq "
            f"{last}, but the checkpoint names seq {newest} (hash {head[:12]}…)")  # fmt: skip


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


INTENT = "remote.intent"
OUTCOME = "remote.outcome"


async def unsettled_intents(
    sessions: async_sessionmaker[AsyncSession],
    since: datetime,
    hosts: Iterable[str] | None,
    limit: int = 50,
) -> list[AuditEvent]:
    """Queue changes recorded as about to run whose outcome was never recorded (or was
    recorded as unknown), newest first: each may or may not have happened on its host."""
    where = [AuditEvent.action == INTENT, AuditEvent.at >= since]
    if hosts is not None:
        where.append(AuditEvent.host.in_(list(hosts)))
    async with sessions() as session:
        stmt = select(AuditEvent).where(*where).order_by(AuditEvent.seq.desc()).limit(limit * 4)
        intents = list((await session.scalars(stmt)).all())
        requests = {i.request_id for i in intents if i.request_id}
        outcomes = select(AuditEvent.detail).where(
            AuditEvent.action == OUTCOME, AuditEvent.request_id.in_(requests)
        )
        settled = {
            intent
            for detail in (await session.scalars(outcomes)).all()
            if isinstance(intent := detail.get("intent"), int) and detail.get("outcome") == "ran"
        }
    return [i for i in intents if i.seq not in settled][:limit]


MAX_WINDOW = 366 * 86400


def parse_duration(text: str) -> int | None:
    """``30m``, ``6h``, ``7d`` (``bot.text``'s grammar) in seconds, at most a year; None if
    it is not one."""
    seconds = text_duration(text)
    return seconds if seconds is not None and seconds <= MAX_WINDOW else None


def since_start(text: str, now: datetime) -> datetime:
    """A window start from a duration (``24h``) or an ISO 8601 date/time (UTC if no zone)."""
    seconds = parse_duration(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise UsageError(
            f"since `{text[:40]}` is neither a duration ({DURATION_FORMS}; at most 366d) "
            "nor an ISO date/time (2025-01-31 or 2025-01-31T08:00)."
        ) from None
