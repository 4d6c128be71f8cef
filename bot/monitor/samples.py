"""One poll of one host through the queue reader, and the sample history in the database.

A poll is the same read as ``/mailq summary HOST`` (``bot.postfix.reader.read_host`` over the one
SSH executor): ``postconf`` then ``postqueue -j`` streamed into a summary, plus ``du`` when a
spool rule is on. What is kept is small: counts per queue, deferred messages per reason
class, the oldest message's age, the spool size and the top reasons (for the alert).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import QueueSample
from bot.errors import MailqbotError
from bot.inventory import Host
from bot.postfix.reader import HostReading, read_host, shorten
from bot.remote.audited import Remote

TOP_REASONS = 3
FAILURES_SEEN = 1000  # consecutive failed polls counted back in the history, at most


@dataclass(frozen=True)
class Sample:
    host: str
    at: float
    ok: bool
    elapsed: float
    error: str | None = None
    queues: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    oldest_age: int | None = None
    spool_kib: int | None = None
    # (reason class, normalised reason, recipients), largest first
    top_reasons: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def deferred(self) -> int:
        return self.queues.get("deferred", 0)


async def poll(remote: Remote, host: Host, now: float, disk: bool) -> Sample:
    """Read ``host``'s queue through the monitor's gateway (``Remote.discarding``: polls
    keep no audit records and change nothing); a failure is a sample too (``ok`` False,
    with the reason)."""
    started = time.monotonic()
    try:
        reading = await read_host(remote, host, now, disk=disk)
    except MailqbotError as exc:
        return Sample(
            host.name, now, False, time.monotonic() - started, shorten(exc.user_message, 300)
        )
    except OSError as exc:
        return Sample(host.name, now, False, time.monotonic() - started, shorten(str(exc), 300))
    return from_reading(host.name, now, reading, time.monotonic() - started)


def from_reading(host: str, at: float, reading: HostReading, elapsed: float) -> Sample:
    summary = reading.summary
    top = sorted(
        (
            (g.reason_class.value, reason, count)
            for g in summary.deferred_by_class
            for reason, count in g.top_reasons[:TOP_REASONS]
        ),
        key=lambda item: (-item[2], item[0], item[1]),
    )[:TOP_REASONS]
    oldest = summary.oldest
    disk = reading.disk
    return Sample(
        host=host,
        at=at,
        ok=True,
        elapsed=elapsed,
        queues={name: counts.messages for name, counts in summary.queues.items()},
        by_class={g.reason_class.value: g.messages for g in summary.deferred_by_class},
        oldest_age=max(0, int(at - oldest.arrival_time)) if oldest else None,
        spool_kib=disk.bytes // 1024 if disk is not None and disk.bytes is not None else None,
        top_reasons=top,
    )


def values(sample: Sample, replica: str) -> dict[str, Any]:
    """The ``queue_samples`` row of one poll."""
    q = sample.queues
    return {
        "host": sample.host,
        "at": sample.at,
        "replica": replica,
        "ok": sample.ok,
        "error": sample.error,
        "elapsed": round(sample.elapsed, 4),
        "total": sum(q.values()),
        "active": q.get("active", 0),
        "incoming": q.get("incoming", 0),
        "deferred": q.get("deferred", 0),
        "hold": q.get("hold", 0),
        "oldest_age": sample.oldest_age,
        "spool_kib": sample.spool_kib,
        "by_class": dict(sample.by_class),
    }


async def store(session: AsyncSession, batch: list[Sample], replica: str) -> None:
    """All of ``batch`` in one multi-row INSERT (no ORM objects, no ids read back)."""
    if batch:
        await session.execute(insert(QueueSample), [values(s, replica) for s in batch])


async def failures_so_far(session: AsyncSession, host: str) -> int:
    """Failed polls of ``host`` since its last good one, from the history (any process's)."""
    stmt = (
        select(QueueSample.ok)
        .where(QueueSample.host == host)
        .order_by(QueueSample.at.desc())
        .limit(FAILURES_SEEN)
    )
    count = 0
    for ok in (await session.scalars(stmt)).all():
        if ok:
            break
        count += 1
    return count


async def baseline(session: AsyncSession, host: str, before: float) -> QueueSample | None:
    """The newest good sample taken at or before ``before`` (the start of a growth window)."""
    stmt = (
        select(QueueSample)
        .where(QueueSample.host == host, QueueSample.at <= before, QueueSample.ok.is_(True))
        .order_by(QueueSample.at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def history(session: AsyncSession, host: str, since: float) -> list[QueueSample]:
    """Good samples of ``host`` since ``since``, oldest first (the trend chart's data)."""
    stmt = (
        select(QueueSample)
        .where(QueueSample.host == host, QueueSample.at >= since, QueueSample.ok.is_(True))
        .order_by(QueueSample.at)
    )
    return list((await session.scalars(stmt)).all())


def describe(sample: Sample) -> dict[str, Any]:
    """What an alert shows of the sample that triggered it."""
    return {
        "deferred": sample.deferred,
        "queues": dict(sample.queues),
        "by_class": dict(sorted(sample.by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
        "top_reasons": [list(t) for t in sample.top_reasons],
        "oldest_age": sample.oldest_age,
        "spool_kib": sample.spool_kib,
        "error": sample.error,
    }
