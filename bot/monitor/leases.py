"""Which process polls which host: leases in the database, moved by conditional UPDATEs.

Each host has a row (``host_leases``) with an owner, an expiry and the time the host is next
due. Every tick a process (1) writes its heartbeat, (2) renews the leases it still holds,
(3) takes orphaned leases (expired while owned: the owner died or stalled) at once, free
ones (given back, or never held) up to its fair share of the hosts (hosts divided by live
processes), or gives back what it holds beyond that share, and (4) claims the polls of its
hosts due before the next tick in one statement: ``UPDATE ... SET next_due = CASE host WHEN
? THEN <its next slot> ... END WHERE host IN (...) AND owner = me AND next_due <= now + tick
RETURNING host``; each poll then starts at its due time, so an alert waits at most one
interval for its poll, not an interval plus a tick. The
rows are locked by this tick's own renewal, and only the owner moves a slot, so each host is
polled once per interval even while leases move; a host whose last poll is still running
stays due (polled late, not skipped). A tick costs the same few statements however many
hosts are due. No session-level locks: every statement stands alone, which works
behind transaction poolers. A process killed without warning stops renewing; its leases
expire after ``lease_ttl`` and are taken at the next tick: with the default tick
(interval/5) and lifetime (3 ticks) its hosts are polled again within two intervals of
their last poll; a slot it claimed but may not have polled (one starting after its last
renewal) is moved back by the taker, so that poll is made at once rather than an interval
later.

This module holds those rules (fair share, spreading, which slots go back); the statements
are in ``bot.stores.leases``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.stores import leases as store

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass
class Leases:
    sessions: async_sessionmaker[AsyncSession]
    replica: str
    intervals: dict[str, float]  # host -> poll interval
    ttl: float
    ahead: float = 0.0  # claim the polls due within this many seconds (one tick)
    jitter: float = 0.0  # an overdue poll starts within jitter x interval, at random
    rng: random.Random = field(default_factory=random.Random)
    held: set[str] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)  # leases acquired at the last tick

    async def ensure_rows(self, now: float) -> None:
        """A lease row for every configured host, due at a random phase of its interval."""
        first = {host: now + self.rng.uniform(0, i) for host, i in self.intervals.items()}
        async with self.sessions() as session, session.begin():
            await store.ensure(session, first)

    async def cycle(self, now: float, busy: set[str]) -> dict[str, float]:
        """One tick: heartbeat, renew, balance; the polls we claimed (host -> start time)."""
        async with self.sessions() as session, session.begin():
            await store.heartbeat(session, self.replica, now)
            live = max(1, await store.live(session, now - self.ttl))
            renewed = await store.renew(session, self.replica, now, now + self.ttl)
            mine = {h for h in renewed if h in self.intervals}
            self.taken, given = await self._balance(session, now, live, busy, mine)
            self.held = (mine | self.taken) - given
            return await self._claim_due(session, now, busy)

    async def release_all(self, unpolled: Iterable[str] = ()) -> None:
        """Give everything back at once (a clean shutdown): others take over at their tick.
        The slots of ``unpolled`` hosts (claimed, not started) are handed back too."""
        async with self.sessions() as session, session.begin():
            await self._unclaim(session, set(unpolled))
            await store.release(session, self.replica)
        self.held = set()

    async def _balance(
        self, session: AsyncSession, now: float, live: int, busy: set[str], mine: set[str]
    ) -> tuple[set[str], set[str]]:
        """Take orphans (expired with an owner: it died or stalled) at once, spread over the
        live processes; take free leases (given back, never held) up to the fair share;
        give back what is held beyond it. Returns (taken, given back)."""
        fair = math.ceil(len(self.intervals) / live)
        orphans, free, lost = await self._expired(session, now)
        room = max(0, fair - len(mine))
        share = max(room, math.ceil(len(orphans) / live))
        take = set(self.rng.sample(orphans, min(share, len(orphans))))
        room -= len(take)
        if room > 0 and free:
            take |= set(self.rng.sample(free, min(room, len(free))))
        if take:
            taken = await store.take(session, sorted(take), self.replica, now, now + self.ttl)
            await self._unclaim(session, taken & lost)
            return taken, set()
        if len(mine) > fair:
            spare = sorted(mine - busy)[: len(mine) - fair]
            # expired as of now: taken within the others' fair shares, not by the first comer
            await store.give_back(session, spare, self.replica, now)
            return set(), set(spare)
        return set(), set()

    async def _expired(
        self, session: AsyncSession, now: float
    ) -> tuple[list[str], list[str], set[str]]:
        """Expired leases: orphans, free ones, and the orphans whose claimed slot may never
        have been polled (it started after the dead owner's last renewal)."""
        orphans: list[str] = []
        free: list[str] = []
        lost: set[str] = set()
        for lease in await store.expired(session, now):
            interval = self.intervals.get(lease.host)
            if interval is None:
                continue
            (free if lease.owner is None else orphans).append(lease.host)
            if lease.owner is not None and lease.next_due - interval >= lease.expires_at - self.ttl:
                lost.add(lease.host)
        return orphans, free, lost

    async def _unclaim(self, session: AsyncSession, hosts: set[str]) -> None:
        """Move ``hosts`` back to the slot last claimed (it was not polled)."""
        await store.move_back(session, {host: self.intervals[host] for host in hosts})

    async def _claim_due(
        self, session: AsyncSession, now: float, busy: set[str]
    ) -> dict[str, float]:
        """Claim the polls due within ``ahead``: host -> when its poll starts.

        A poll due now or soon starts at its due time and the next is one interval later
        (each host keeps the random phase it got). One overdue by more than ``ahead`` (a
        lease just taken, a stalled process) starts within ``jitter`` x interval, at random,
        and its phase moves there: a burst of overdue hosts is spread, not repeated.
        """
        starts: dict[str, float] = {}
        for host, due in (await store.due(session, self.replica, now, now + self.ahead)).items():
            interval = self.intervals.get(host)
            if interval is not None and host not in busy:
                late = due < now - self.ahead
                starts[host] = now + self.rng.uniform(0, self.jitter * interval) if late else due
        following = {h: starts[h] + self.intervals[h] for h in starts}
        claimed = await store.claim(session, self.replica, following, now + self.ahead, now)
        return {h: starts[h] for h in claimed}
