"""A Slack channel's post budget, shared by every replica through the database.

One row per channel and kind of write (``channel_budgets``, keyed by ``key``: posts under
the channel ID, root edits under the channel ID and `` edits``): a token bucket (``tokens``
as of ``at``) and the time the latest post it granted goes out (``last_post``). ``reserve``
grants a post its slot: it takes a token (refilled at ``per_second`` up to ``capacity``) and
places the post at least ``gap`` seconds after the channel's previous one, whichever replica
made that one. A post that may wait takes its token ahead (the bucket goes into debt, so
later posts wait longer); one that may not wait gets None when there is no token now, and
its caller folds it.

The row is changed by compare-and-set on ``version``: no row locks, the same on SQLite and
PostgreSQL; a replica that lost a race reads again. Times are wall-clock seconds, so the
replicas share them; a replica whose clock is behind only refills less.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ChannelBudget

RACES = 50  # reads after lost races before giving up (posts are rare: races are too)


@dataclass(frozen=True)
class Bucket:
    capacity: float  # tokens at most (a burst)
    per_second: float  # refill rate
    gap: float  # seconds between two posts in the channel, at least


def key(channel: str, kind: str) -> str:
    """The row of ``channel``'s budget for ``kind`` ("post" or "edit"). A Slack channel ID
    holds no space, so the two never meet."""
    return channel if kind == "post" else f"{channel} {kind}s"


class BudgetContended(RuntimeError):
    """The channel's row kept changing under this replica."""


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    channel: str,
    bucket: Bucket,
    now: float,
    wait: bool,
) -> float | None:
    """Seconds from ``now`` until the post may go out, its token taken; None when there is
    no token now and ``wait`` is false (nothing is taken then)."""
    for race in range(RACES):
        async with sessions() as session, session.begin():
            row = await session.get(ChannelBudget, channel)
            if row is None:
                await _create(session, channel, bucket, now)
                continue
            tokens = min(bucket.capacity, row.tokens + max(0.0, now - row.at) * bucket.per_second)
            if tokens >= 1:
                ready = now
            elif wait:
                ready = now + (1 - tokens) / bucket.per_second
            else:
                return None
            slot = max(ready, row.last_post + bucket.gap)
            changed = await session.execute(
                update(ChannelBudget)
                .where(ChannelBudget.channel == channel, ChannelBudget.version == row.version)
                .values(
                    tokens=tokens - 1,
                    at=max(now, row.at),
                    last_post=slot,
                    version=row.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount == 1:  # type: ignore[attr-defined]
                return slot - now
        await asyncio.sleep(0.002 * (race + 1))
    raise BudgetContended(
        f"the post budget of channel {channel} kept changing; this process uses its own "
        "budget for this post"
    )


async def _create(session: AsyncSession, channel: str, bucket: Bucket, now: float) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ChannelBudget).values(
        channel=channel, tokens=bucket.capacity, at=now, last_post=0.0, version=0
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["channel"]))
