"""``command_runs``: one row per request, written with its audit event in one transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import CommandRun
from bot.stores import audit


@dataclass(frozen=True)
class Run:
    """Who asked what, where, when, and how it ended."""

    request_id: str
    source: str
    user_id: str
    team_id: str | None
    channel_id: str | None
    command: str
    text: str
    target: str | None
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None


async def record(
    sessions: async_sessionmaker[AsyncSession], run: Run, event: audit.AuditRecord
) -> None:
    """Write the run and its audit event in one transaction (neither without the other)."""
    async with sessions() as session, session.begin():
        session.add(CommandRun(**asdict(run)))
        await audit.append(session, event)
