"""Slot claims in the lease table: polls start at their due time, overdue ones are spread,
and a dead owner's claimed-but-unpolled slot is handed back to the taker; and the lease
store's conditional statements one by one (SQLite and PostgreSQL)."""

from __future__ import annotations

import random

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import HostLease
from bot.monitor.leases import Leases
from bot.stores import leases as store
from bot.stores.leases import LeaseView

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


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[str | None, float]]:
    """host -> (owner, expires_at)."""
    async with sessions() as session:
        stmt = select(HostLease.host, HostLease.owner, HostLease.expires_at)
        return {h: (o, e) for h, o, e in (await session.execute(stmt)).all()}


async def test_the_lease_store_moves_a_lease_only_when_its_condition_holds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Each statement of ``bot.stores.leases`` on its own: a taken lease must still be
    expired, a claimed slot still due and held, and a given-back lease becomes free."""
    async with sessions() as session, session.begin():
        await store.ensure(session, {"a": NOW + 1, "b": NOW + 2, "c": NOW + 3})
        await store.ensure(session, {"a": NOW + 50})  # an existing row stays as it is
    await set_rows(
        sessions,
        {
            "a": ("r1", NOW + 10, NOW + 1),  # held by r1
            "b": ("r1", NOW - 5, NOW + 2),  # r1's, expired: an orphan
            "c": (None, 0.0, NOW + 30),  # free
        },
    )
    async with sessions() as session, session.begin():
        assert sorted(await store.expired(session, NOW), key=lambda v: v.host) == [
            LeaseView("b", "r1", NOW + 2, NOW - 5),
            LeaseView("c", None, NOW + 30, 0.0),
        ]
        assert await store.renew(session, "r1", NOW, NOW + 15) == {"a"}  # b has expired
        assert await store.take(session, ["a", "b", "c"], "r2", NOW, NOW + 15) == {"b", "c"}
    assert await rows(sessions) == {
        "a": ("r1", NOW + 15),
        "b": ("r2", NOW + 15),
        "c": ("r2", NOW + 15),
    }
    async with sessions() as session, session.begin():
        assert await store.due(session, "r2", NOW, NOW + 5) == {"b": NOW + 2}
        # r1 does not hold b, and c is not due yet: neither is claimed
        claimed = await store.claim(session, "r2", {"b": NOW + 62, "c": NOW + 90}, NOW + 5, NOW)
        assert claimed == ["b"]
        assert await store.claim(session, "r1", {"b": NOW + 62}, NOW + 5, NOW) == []
        await store.move_back(session, {"c": 20.0})
        await store.give_back(session, ["a", "c"], "r2", NOW)  # a is r1's: left alone
    assert (await next_due(sessions)) == {"a": NOW + 1, "b": NOW + 62, "c": NOW + 10}
    assert await rows(sessions) == {"a": ("r1", NOW + 15), "b": ("r2", NOW + 15), "c": (None, NOW)}


async def test_heartbeats_count_the_live_replicas_and_a_release_frees_all(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await store.ensure(session, {"a": NOW, "b": NOW})
        await store.heartbeat(session, "r1", NOW - 20)
        await store.heartbeat(session, "r2", NOW - 20)
        await store.heartbeat(session, "r1", NOW)  # a second beat moves r1's time
        assert await store.live(session, NOW - 15) == 1
        assert await store.live(session, NOW - 30) == 2
        assert await store.take(session, ["a"], "r1", NOW, NOW + 15) == {"a"}
        assert await store.take(session, ["b"], "r2", NOW, NOW + 15) == {"b"}
        await store.release(session, "r1")
        assert await store.live(session, NOW - 30) == 1  # r1's heartbeat is gone
    assert await rows(sessions) == {"a": (None, 0.0), "b": ("r2", NOW + 15)}
