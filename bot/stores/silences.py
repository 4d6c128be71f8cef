"""Silences: what ``/mailq silence`` (and the Snooze button) mute, until when."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Silence

KINDS = ("host", "group", "rule", "incident")


@dataclass(frozen=True)
class SilenceView:
    id: int
    target_kind: str
    target: str
    reason: str
    created_by: str
    created_at: float
    expires_at: float

    @classmethod
    def of(cls, row: Silence) -> SilenceView:
        return cls(
            row.id,
            row.target_kind,
            row.target,
            row.reason,
            row.created_by,
            row.created_at,
            row.expires_at,
        )

    @property
    def what(self) -> str:
        return f"{self.target_kind} {self.target}"


async def add(
    session: AsyncSession,
    target_kind: str,
    target: str,
    reason: str,
    by: str,
    now: float,
    until: float,
) -> SilenceView:
    if target_kind not in KINDS:
        raise ValueError(f"unknown silence target kind {target_kind!r}")
    row = Silence(
        target_kind=target_kind,
        target=target,
        reason=reason,
        created_by=by,
        created_at=now,
        expires_at=until,
    )
    session.add(row)
    await session.flush()
    return SilenceView.of(row)


async def active(session: AsyncSession, now: float) -> list[SilenceView]:
    """The silences in force at ``now``, soonest to expire first."""
    stmt = select(Silence).where(Silence.expires_at > now).order_by(Silence.expires_at, Silence.id)
    return [SilenceView.of(r) for r in (await session.scalars(stmt)).all()]


async def create(
    sessions: async_sessionmaker[AsyncSession],
    target_kind: str,
    target: str,
    reason: str,
    by: str,
    now: float,
    until: float,
) -> SilenceView:
    """``add`` in a transaction of its own (``/mailq silence``)."""
    async with sessions() as session, session.begin():
        return await add(session, target_kind, target, reason, by, now, until)


async def in_force(sessions: async_sessionmaker[AsyncSession], now: float) -> list[SilenceView]:
    async with sessions() as session:
        return await active(session, now)
