"""What every request needs, built once at start-up and passed down explicitly."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.inventory import Inventory
from bot.monitor.metrics import Metrics
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail

GroupResolver = Callable[[str], Awaitable[frozenset[str]]]


async def no_groups(_user_id: str) -> frozenset[str]:
    return frozenset()


@dataclass
class Services:
    settings: Settings
    inventory: Inventory
    executor: SSHExecutor
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditTrail  # the audit key and head checkpoint (outside the database)
    clock: Callable[[], float] = time.time
    # Teams whose users may be authorised at all; the Slack front end adds its own team.
    allowed_teams: set[str] = field(default_factory=set)
    # The Slack workspace's address (auth.test), for links to messages in the audit trail.
    slack_url: str | None = None
    # Slack user groups of a user (cached by the Slack front end); none elsewhere.
    groups_of: GroupResolver = no_groups
    replica: str = "mailqbot"
    # This process's Prometheus metrics (the monitor and the pipeline count into them).
    metrics: Metrics = field(default_factory=Metrics)

    def for_request(self) -> Services:
        """This request's own view: a reload (``bot.app.reload``) swaps the inventory of the
        long-lived services, never of a request already running."""
        return dataclasses.replace(self)
