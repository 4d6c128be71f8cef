"""Engine and session factory, created by the caller (no module-level engine)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from bot import startup
from bot.stores.audit_key import AuditTrail

CONNECT_TIMEOUT = 15.0


def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


async def check_reachable(engine: AsyncEngine, url: str) -> None:
    """Connect once and run ``SELECT 1``; ``ServiceUnavailable`` (one line, no password)
    says why not."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        raise startup.database_unreachable(url, startup.reason(exc)) from None


async def is_reachable(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """For /healthz: the sessions' database answers ``SELECT 1`` within a few seconds."""
    engine: AsyncEngine = sessions.kw["bind"]
    try:
        async with asyncio.timeout(3), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, SQLAlchemyError):
        return False
    return True


def make_sessionmaker(
    engine: AsyncEngine, trail: AuditTrail | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``trail`` (the audit key and checkpoint) lets them append to
    the audit trail, which a session without one refuses."""
    info = {} if trail is None else {"audit_trail": trail}
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN (SAVEPOINTs need it), and make every
    # transaction take the write lock up front: SQLite writers then queue on busy_timeout
    # instead of failing when a read transaction tries to upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
