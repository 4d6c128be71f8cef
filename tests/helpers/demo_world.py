"""Demo hosts (real in-process SSH servers) wired to real services and a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app.runtime import open_services
from bot.app.services import Services
from bot.db.session import make_engine, make_sessionmaker
from bot.demo import DemoHosts, demo_hosts
from bot.inventory import Access, Inventory
from bot.settings import Settings


@dataclass
class World:
    services: Services
    demo: DemoHosts
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def demo_world(
    db_url: str, tmp_path: Path, access: Access, now: float | None = None
) -> AsyncIterator[World]:
    """Demo hosts whose inventory carries ``access``, and services on ``db_url``."""
    engine = make_engine(db_url)
    try:
        async with demo_hosts(tmp_path, now=now) as demo:
            config = demo.inventory.config.model_copy(update={"access": access})
            settings = Settings(DATABASE_URL=db_url)
            async with open_services(settings, Inventory(config)) as services:
                yield World(services, demo, make_sessionmaker(engine, services.audit))
    finally:
        await engine.dispose()
