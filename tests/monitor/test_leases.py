"""Slot claims in the lease table: polls start at their due time, overdue ones are spread,
and a dead owner's claimed-but-unpolled slot is handed back to the taker (SQLite and
PostgreSQL)."""

from __future__ import annotations

import random

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import HostLease
from bot.monitor.leases import Leases

NOW = 100_000.0
INTERVAL = 60.0


def leases(sessions: async_sessionmaker[AsyncSession], replica: str, hosts: list[str]) -> Leases:
    return Leases(
        sessions,
        replica,
        dict.fromkeys(hosts, INTERVAL),
        ttl=15.0,
        ahead=5.0,
        jitter=0.1,
        rng=random.Random(7),
    )


async def set_rows(
    sessions: async_sessionmaker[AsyncSession], rows: dict[str, tuple[str | None, float, float]]
) -> None:
    """host -> (owner, expires_at, next_due)."""
    async with sessions() as session, session.begin():
        for host, (owner, expires, due) in rows.items():
            await session.execute(
                update(HostLease)
                .where(HostLease.host == host)
                .values(owner=owner, expires_at=expires, next_due=due)
            )


async def next_due(sessions: async_sessionmaker[AsyncSession]) -> dict[str, float]:
    async with sessions() as session:
        return dict((await session.execute(select(HostLease.host, HostLease.next_due))).all())


async def test_polls_start_at_their_due_time_and_overdue_ones_are_spread(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = leases(sessions, "r1", ["soon", "later", "overdue"])
    await mine.ensure_rows(NOW)
    await set_rows(
        sessions,
        {
            "soon": (None, 0.0, NOW + 3),  # due before the next tick: claimed now, starts then
            "later": (None, 0.0, NOW + 30),
            "overdue": (None, 0.0, NOW - 200),  # e.g. a lease free for a while
        },
    )
    starts = await mine.cycle(NOW, set())
    assert set(starts) == {"soon", "overdue"}
    assert starts["soon"] == NOW + 3
    assert NOW <= starts["overdue"] <= NOW + 0.1 * INTERVAL
    due = await next_due(sessions)
    assert due["soon"] == NOW + 3 + INTERVAL  # the host keeps its phase
    assert due["overdue"] == starts["overdue"] + INTERVAL
    assert await mine.cycle(NOW + 1, set()) == {}  # each slot is claimed once
    assert mine.held == {"soon", "later", "overdue"}


async def test_a_dead_owners_unpolled_slot_is_polled_by_the_taker(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    taker = leases(sessions, "r2", ["claimed", "polled"])
    await taker.ensure_rows(NOW)
    renewed = NOW - 25  # r1's last renewal: its leases expired at NOW - 10
    await set_rows(
        sessions,
        {
            # r1 claimed the slot at NOW + 2 (due after its last renewal): maybe never polled
            "claimed": ("r1", renewed + 15, NOW + 2 + INTERVAL),
            # this slot started before r1's last renewal: it was polled
            "polled": ("r1", renewed + 15, renewed - 1 + INTERVAL),
        },
    )
    starts = await taker.cycle(NOW, set())
    assert taker.taken == {"claimed", "polled"}
    assert starts == {"claimed": NOW + 2}
    assert (await next_due(sessions))["polled"] == renewed - 1 + INTERVAL
