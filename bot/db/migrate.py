"""Run Alembic migrations, once however many processes ask; check a database's revision.

``upgrade_async`` (``mailqbot migrate``, run by every replica's container at start) holds a
lock around the upgrade: a PostgreSQL advisory lock (on its own connection, held for the
whole upgrade) or, on SQLite, ``flock`` on ``DATABASE.migrate.lock`` next to the file.
The first process migrates; the others wait, then find the database at the head and do
nothing. Alembic is imported only here, when an upgrade runs: the start-up check
(``ensure_migrated``) reads ``alembic_version`` with one query and compares it with
``HEAD``, which a test keeps equal to the head of ``migrations/versions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bot.errors import DatabaseNotMigrated

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
HEAD = "f4a9c2d6b310"  # the newest revision in migrations/versions (a test checks)
LOCK_KEY = int.from_bytes(b"mailqbot", "big")  # pg_advisory_lock's key (fits a bigint)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking and unlocked: call from a thread, or use ``upgrade_async``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    """Upgrade to the head, holding the migration lock (see the module's docstring)."""
    async with migration_lock(url):
        await asyncio.to_thread(upgrade, url)


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


@contextlib.asynccontextmanager
async def migration_lock(url: str) -> AsyncIterator[None]:
    """Only one process at a time inside: an advisory lock on PostgreSQL, a file lock next
    to a SQLite database (an in-memory one needs none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        async with _advisory_lock(url):
            yield
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is migrating %s; waiting for it", database)
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _advisory_lock(url: str) -> AsyncIterator[None]:
    from bot.db.session import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            key = {"key": LOCK_KEY}
            got = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key)
            if not got:
                log.warning("another process is migrating this database; waiting for it")
                await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                await connection.commit()
    finally:
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision ``alembic_version`` names (None: an empty database)."""
    async with engine.connect() as connection:
        try:
            found = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:  # no such table: never migrated
            return None
    return None if found is None else str(found)


async def ensure_migrated(engine: AsyncEngine, url: str = "") -> None:
    """Refuse to run on a database that is not at the head revision."""
    found = await current_revision(engine)
    if found != HEAD:
        state = "empty" if found is None else f"at revision {found}"
        raise DatabaseNotMigrated(
            f"The database is {state}, but this mailqbot needs revision {HEAD}. "
            "Run `mailqbot migrate` (same DATABASE_URL) and start the bot again."
        )
