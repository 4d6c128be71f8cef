"""The sample history in ``queue_samples``: the batch INSERT, the failure count read back,
a growth window's baseline and a chart's history (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import QueueSample
from bot.monitor.samples import Sample
from bot.stores import samples as store
from bot.stores.samples import SampleView


def good(host: str, at: float, deferred: int, by_class: dict[str, int] | None = None) -> Sample:
    return Sample(
        host,
        at,
        True,
        0.123456,
        queues={"active": 2, "deferred": deferred, "hold": 1},
        by_class=by_class or {"greylisted": deferred},
        oldest_age=90,
        spool_kib=512,
    )


def failed(host: str, at: float) -> Sample:
    return Sample(host, at, False, 5.0, error="connection refused")


async def record(sessions: async_sessionmaker[AsyncSession], *batch: Sample) -> None:
    async with sessions() as session, session.begin():
        await store.store(session, list(batch), "r1")


async def test_a_batch_is_stored_row_by_row(sessions: async_sessionmaker[AsyncSession]) -> None:
    await record(sessions, good("mx1", 100.0, 7), failed("mx2", 100.0))
    await record(sessions)  # an empty batch writes nothing
    async with sessions() as session:
        rows = (await session.scalars(select(QueueSample).order_by(QueueSample.host))).all()
    assert [(r.host, r.at, r.replica, r.ok, r.error) for r in rows] == [
        ("mx1", 100.0, "r1", True, None),
        ("mx2", 100.0, "r1", False, "connection refused"),
    ]
    mx1 = rows[0]
    assert (mx1.total, mx1.active, mx1.incoming, mx1.deferred, mx1.hold) == (10, 2, 0, 7, 1)
    assert (mx1.elapsed, mx1.oldest_age, mx1.spool_kib) == (0.1235, 90, 512)
    assert mx1.by_class == {"greylisted": 7}
    assert (rows[1].total, rows[1].by_class) == (0, {})


async def test_failures_are_counted_back_to_the_last_good_poll(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, failed("mx1", 100.0), good("mx2", 100.0, 1))
    await record(sessions, good("mx1", 200.0, 1), failed("mx2", 200.0))
    await record(sessions, failed("mx1", 300.0))
    await record(sessions, failed("mx1", 400.0))
    async with sessions() as session:
        assert await store.failures_so_far(session, "mx1") == 2  # the one at 100 is before
        assert await store.failures_so_far(session, "mx2") == 1
        assert await store.failures_so_far(session, "mx3") == 0  # no history


async def test_the_baseline_is_the_newest_good_sample_at_or_before_the_window_start(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, good("mx1", 100.0, 10, {"greylisted": 6, "other": 4}))
    await record(sessions, good("mx1", 200.0, 20), good("mx2", 200.0, 99))
    await record(sessions, failed("mx1", 250.0))
    await record(sessions, good("mx1", 300.0, 30))
    async with sessions() as session:
        assert await store.baseline(session, "mx1", 99.0) is None
        assert await store.baseline(session, "mx1", 150.0) == SampleView(
            "mx1", 100.0, 10, {"greylisted": 6, "other": 4}
        )
        assert await store.baseline(session, "mx1", 200.0) == SampleView(
            "mx1", 200.0, 20, {"greylisted": 20}
        )
        # the failed poll at 250 is no baseline: the good one before it is
        assert await store.baseline(session, "mx1", 299.0) == SampleView(
            "mx1", 200.0, 20, {"greylisted": 20}
        )


async def test_the_history_holds_good_samples_since_oldest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, good("mx1", 300.0, 3), good("mx2", 300.0, 9))
    await record(sessions, good("mx1", 100.0, 1), failed("mx1", 200.0))
    await record(sessions, good("mx1", 400.0, 4))
    async with sessions() as session:
        history = await store.history(session, "mx1", 100.0)
        later = await store.history(session, "mx1", 350.0)
    assert [(v.host, v.at, v.deferred) for v in history] == [
        ("mx1", 100.0, 1),
        ("mx1", 300.0, 3),
        ("mx1", 400.0, 4),
    ]
    assert later == [SampleView("mx1", 400.0, 4, {"greylisted": 4})]
