"""``slack_deliveries``: the keys of Slack deliveries already handled, across replicas.

The first delivery inserts its key; an insert that fails on the primary key means "seen".
If the database cannot say, the answer is None: the caller must not repeat a change on it.
Rows older than ``keep`` are deleted now and then.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import SlackDelivery

log = logging.getLogger(__name__)
KEEP = timedelta(days=1)
PRUNE_EVERY = 3600.0


class Deliveries:
    """``first_time(key)``: True once per key (per ``keep``), across processes and replicas."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keep: timedelta = KEEP,
        prune_every: float = PRUNE_EVERY,
    ) -> None:
        self._sessions = sessions
        self._keep = keep
        self._prune_every = prune_every
        self._next_prune = 0.0

    async def first_time(self, key: str) -> bool | None:
        """True the first time ``key`` is seen, False after; None if the database could
        not say (the caller must then refuse anything it cannot repeat safely)."""
        now = datetime.now(UTC)
        try:
            async with self._sessions() as session, session.begin():
                session.add(SlackDelivery(key=key, seen_at=now))
        except IntegrityError:
            return False
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not record Slack delivery %s (%s): changes refused", key, exc)
            return None
        await self._maybe_prune(now)
        return True

    async def _maybe_prune(self, now: datetime) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self._prune_every
        await self.prune(now - self._keep)

    async def prune(self, before: datetime) -> int:
        """Delete keys seen before ``before``; returns how many."""
        try:
            async with self._sessions() as session, session.begin():
                result = await session.execute(
                    delete(SlackDelivery).where(SlackDelivery.seen_at < before)
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not prune slack_deliveries: %s", exc)
            return 0
        return int(getattr(result, "rowcount", 0) or 0)
