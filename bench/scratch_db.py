"""A migrated scratch database for a benchmark: SQLite in a folder, or a new PostgreSQL
database next to ``MAILQBOT_TEST_PG`` (dropped first if a run before left it)."""

from __future__ import annotations

import os
from pathlib import Path

from bot.db.migrate import upgrade_async

PG_ADMIN = os.environ.get("MAILQBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def migrated_database(use_sqlite: bool, directory: Path, name: str) -> str:
    """The URL of an empty database at the current schema, named ``name``."""
    if use_sqlite:
        url = f"sqlite+aiosqlite:///{directory / f'{name}.sqlite3'}"
    else:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        url = f"{base}/{name}"
    await upgrade_async(url)
    return url
