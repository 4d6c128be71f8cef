"""Poll leases (``host_leases``) and the pollers' heartbeats (``monitor_replicas``).

The statements ``bot.monitor.leases`` makes in a tick, each one standing alone (no
session-level locks, so they work behind transaction poolers); the caller holds the
transaction and decides who takes, gives back and claims what. A lease changes hands only by
a conditional UPDATE: ``take`` moves only leases still expired, ``claim`` moves only slots
still due and held by the claimer, so of two processes racing for the same row one wins.
Long host lists go in chunks of ``CHUNK`` per statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import HostLease, MonitorReplica

CHUNK = 500  # hosts per statement, at most


@dataclass(frozen=True)
class LeaseView:
    """An expired lease: ``owner`` None when it was given back or never held."""

    host: str
    owner: str | None
    next_due: float
    expires_at: float


def _chunks(hosts: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(hosts), CHUNK):
        yield hosts[start : start + CHUNK]


async def ensure(session: AsyncSession, next_due: Mapping[str, float]) -> None:
    """A free lease row for each host of ``next_due`` (host -> when it is first due) that has
    none yet; existing rows are left as they are."""
    rows = [
        {"host": host, "owner": None, "expires_at": 0.0, "next_due": due}
        for host, due in next_due.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), CHUNK):
        stmt = insert(HostLease).values(rows[start : start + CHUNK])
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["host"]))


async def heartbeat(session: AsyncSession, replica: str, now: float) -> None:
    """``replica`` is alive at ``now``."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(MonitorReplica).values(replica=replica, seen_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["replica"], set_={"seen_at": now})
    await session.execute(stmt)


async def live(session: AsyncSession, since: float) -> int:
    """Replicas whose heartbeat is newer than ``since`` (the caller's own included)."""
    stmt = select(func.count()).where(MonitorReplica.seen_at > since)
    return int((await session.execute(stmt)).scalar_one())


async def renew(session: AsyncSession, replica: str, now: float, until: float) -> set[str]:
    """Extend ``replica``'s leases not yet expired at ``now`` to ``until`` (locking their rows
    until the transaction ends); the hosts renewed."""
    stmt = (
        update(HostLease)
        .where(HostLease.owner == replica, HostLease.expires_at > now)
        .values(expires_at=until)
        .returning(HostLease.host)
        .execution_options(synchronize_session=False)
    )
    return set((await session.scalars(stmt)).all())


async def expired(session: AsyncSession, now: float) -> list[LeaseView]:
    """The leases expired at ``now``, owned (orphans) or free."""
    stmt = select(HostLease.host, HostLease.owner, HostLease.next_due, HostLease.expires_at).where(
        HostLease.expires_at <= now
    )
    return [
        LeaseView(host, owner, due, expires)
        for host, owner, due, expires in (await session.execute(stmt)).all()
    ]


async def take(
    session: AsyncSession, hosts: list[str], replica: str, now: float, until: float
) -> set[str]:
    """Make ``replica`` the owner, until ``until``, of those of ``hosts`` whose lease is still
    expired at ``now``; the hosts taken."""
    taken: set[str] = set()
    for chunk in _chunks(hosts):
        stmt = (
            update(HostLease)
            .where(HostLease.host.in_(chunk), HostLease.expires_at <= now)
            .values(owner=replica, expires_at=until)
            .returning(HostLease.host)
            .execution_options(synchronize_session=False)
        )
        taken.update((await session.scalars(stmt)).all())
    return taken


async def move_back(session: AsyncSession, intervals: Mapping[str, float]) -> None:
    """Move each host's next slot back by its interval (host -> seconds): the slot last
    claimed for it was not polled."""
    by_interval: dict[float, list[str]] = {}
    for host in sorted(intervals):
        by_interval.setdefault(intervals[host], []).append(host)
    for interval, names in by_interval.items():
        for chunk in _chunks(names):
            await session.execute(
                update(HostLease)
                .where(HostLease.host.in_(chunk))
                .values(next_due=HostLease.next_due - interval)
                .execution_options(synchronize_session=False)
            )


async def give_back(session: AsyncSession, hosts: list[str], replica: str, now: float) -> None:
    """Give ``replica``'s leases of ``hosts`` back: free, expired as of ``now`` (the other
    processes take them within their fair shares, not the first comer all)."""
    if hosts:
        await session.execute(
            update(HostLease)
            .where(HostLease.host.in_(hosts), HostLease.owner == replica)
            .values(owner=None, expires_at=now)
        )


async def due(session: AsyncSession, replica: str, now: float, before: float) -> dict[str, float]:
    """``replica``'s live leases whose next poll is due at or before ``before``: host ->
    when it is due."""
    stmt = select(HostLease.host, HostLease.next_due).where(
        HostLease.owner == replica,
        HostLease.expires_at > now,
        HostLease.next_due <= before,
    )
    return {host: next_due for host, next_due in (await session.execute(stmt)).all()}


async def claim(
    session: AsyncSession,
    replica: str,
    following: Mapping[str, float],
    before: float,
    now: float,
) -> list[str]:
    """Claim the polls of ``following``'s hosts (host -> its next slot after this poll), each
    only if ``replica`` still holds it and it is still due at or before ``before``: its
    slot moves on and ``polled_at`` becomes ``now``. The hosts claimed."""
    claimed: list[str] = []
    for chunk in _chunks(sorted(following)):
        stmt = (
            update(HostLease)
            .where(
                HostLease.host.in_(chunk),
                HostLease.owner == replica,
                HostLease.next_due <= before,
            )
            .values(
                next_due=case({h: following[h] for h in chunk}, value=HostLease.host),
                polled_at=now,
            )
            .returning(HostLease.host)
            .execution_options(synchronize_session=False)
        )
        claimed += (await session.scalars(stmt)).all()
    return claimed


async def release(session: AsyncSession, replica: str) -> None:
    """Free every lease of ``replica`` and drop its heartbeat (a clean shutdown)."""
    await session.execute(
        update(HostLease).where(HostLease.owner == replica).values(owner=None, expires_at=0.0)
    )
    await session.execute(delete(MonitorReplica).where(MonitorReplica.replica == replica))
