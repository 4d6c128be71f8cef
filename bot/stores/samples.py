"""The monitor's sample history (``queue_samples``): one row per poll of one host.

``store`` writes a batch of polls in one multi-row INSERT. The reads serve the alert rules
and the trend chart: ``failures_so_far`` (failed polls in a row, after a takeover or a
restart), ``baseline`` (the start of a growth window) and ``history`` (a chart's data); the
last two return ``SampleView`` values, not ORM rows. Pruning and downsampling are in
``bot.stores.retention``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import QueueSample
from bot.monitor.samples import Sample

FAILURES_SEEN = 1000  # consecutive failed polls counted back in the history, at most


@dataclass(frozen=True)
class SampleView:
    """What the rules and the chart read of a good sample."""

    host: str
    at: float
    deferred: int
    by_class: Mapping[str, int]


_VIEW = (QueueSample.host, QueueSample.at, QueueSample.deferred, QueueSample.by_class)


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


async def store(session: AsyncSession, batch: Sequence[Sample], replica: str) -> None:
    """All of ``batch`` in one multi-row INSERT (no ORM objects, no ids read back)."""
    if batch:
        await session.execute(insert(QueueSample), [values(s, replica) for s in batch])


async def failures_so_far(session: AsyncSession, host: str) -> int:
    """Failed polls of ``host`` since its last good one, from the history (any process's),
    counting back ``FAILURES_SEEN`` polls at most."""
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


async def baseline(session: AsyncSession, host: str, before: float) -> SampleView | None:
    """The newest good sample taken at or before ``before`` (the start of a growth window)."""
    stmt = (
        select(*_VIEW)
        .where(QueueSample.host == host, QueueSample.at <= before, QueueSample.ok.is_(True))
        .order_by(QueueSample.at.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else SampleView(*row)


async def history(session: AsyncSession, host: str, since: float) -> list[SampleView]:
    """Good samples of ``host`` since ``since``, oldest first (the trend chart's data)."""
    stmt = (
        select(*_VIEW)
        .where(QueueSample.host == host, QueueSample.at >= since, QueueSample.ok.is_(True))
        .order_by(QueueSample.at)
    )
    return [SampleView(*row) for row in (await session.execute(stmt)).all()]
