"""Build the services from settings, and tear them down: one place for start-up work."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.app.services import Services
from bot.db.migrate import ensure_migrated
from bot.db.session import check_reachable, make_engine, make_sessionmaker
from bot.inventory import Inventory, load_config
from bot.monitor.metrics import Metrics
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail


@asynccontextmanager
async def open_services(
    settings: Settings, inventory: Inventory | None = None, *, slack: bool = False
) -> AsyncIterator[Services]:
    """Load the config (``slack``: for serving Slack, so with grants), check the database is
    reachable and migrated, open the SSH executor."""
    if inventory is None:
        inventory = Inventory(load_config(settings.config_path, deployed=True, slack=slack))
    trail = AuditTrail.from_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        await check_reachable(engine, settings.database_url)
        await ensure_migrated(engine, settings.database_url)
        async with SSHExecutor() as executor:
            sessions = make_sessionmaker(engine, trail)
            yield Services(
                settings=settings,
                inventory=inventory,
                executor=executor,
                sessions=sessions,
                audit=trail,
                replica=settings.replica_id or socket.gethostname(),
                metrics=Metrics(sessions),
            )
    finally:
        await engine.dispose()
