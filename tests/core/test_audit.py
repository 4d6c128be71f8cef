"""The audit chain: appends link up, concurrent appends stay linear, tampering is named."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import audit
from bot.db.models import AuditEvent


async def _append(sessions: async_sessionmaker[AsyncSession], n: int, actor: str = "U1") -> None:
    for i in range(n):
        async with sessions() as session, session.begin():
            await audit.append(
                session, audit.AuditRecord(source="test", actor=actor, action="t", detail={"i": i})
            )


async def test_chain_verifies(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append(sessions, 5)
    result = await audit.verify(sessions)
    assert result.ok
    assert result.rows == 5


async def test_concurrent_appends_stay_one_chain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await asyncio.gather(*(_append(sessions, 5, actor=f"U{i}") for i in range(4)))
    result = await audit.verify(sessions)
    assert result.ok, result.problem
    assert result.rows == 20
    async with sessions() as session:
        seqs = list((await session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq))).all())
    assert seqs == list(range(1, 21))


async def test_edited_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append(sessions, 6)
    async with sessions() as session, session.begin():
        victim = (await session.scalars(select(AuditEvent).where(AuditEvent.seq == 4))).one()
        await session.execute(
            update(AuditEvent).where(AuditEvent.id == victim.id).values(actor="U_SOMEONE_ELSE")
        )
    result = await audit.verify(sessions)
    assert not result.ok
    assert result.first_bad_id == victim.id
    assert result.rows == 3
    assert "content changed" in (result.problem or "")


async def test_deleted_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append(sessions, 4)
    async with sessions() as session, session.begin():
        await session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        after = (await session.scalars(select(AuditEvent).where(AuditEvent.seq == 3))).one()
    result = await audit.verify(sessions)
    assert result.first_bad_id == after.id
    assert "sequence gap" in (result.problem or "")
