"""Alembic environment: async, with the URL from mailqbot's settings (DATABASE_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.db.models import Base
from bot.db.session import make_engine
from bot.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """The URL set by ``bot.db.migrate``, else DATABASE_URL (the ``alembic`` CLI)."""
    if config.file_config.has_section(config.config_ini_section):
        url = config.get_main_option("sqlalchemy.url")
        if url:
            return url
    return load_settings().database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = make_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    existing = config.attributes.get("connection")
    if existing is not None:
        _run(existing)
    else:
        asyncio.run(_run_online())
