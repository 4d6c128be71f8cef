"""What every request needs, built once at start-up and passed down explicitly.

``Services`` is frozen: a request, a poll round or a button click holds one and nothing can
change it under them. The few things that do change while ``mailqbot serve`` runs (the
inventory on a reload, the team and workspace address learned from Slack at start-up) change
in ``LiveServices``, the one holder that serve, the monitor, reload and the Slack front end
share: each of them takes ``live.now()`` when its work starts, so a reload meanwhile leaves
work in flight on the inventory it started with.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.inventory import Inventory
from bot.monitor.metrics import Metrics
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

GroupResolver = Callable[[str], Awaitable[frozenset[str]]]


async def no_groups(_user_id: str) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class Services:
    settings: Settings
    inventory: Inventory
    executor: SSHExecutor
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditTrail  # the audit key and head checkpoint (outside the database)
    clock: Callable[[], float] = time.time
    # Teams whose users may be authorised at all; the Slack front end adds its own team.
    allowed_teams: frozenset[str] = frozenset()
    # The Slack workspace's address (auth.test), for links to messages in the audit trail.
    slack_url: str | None = None
    # Slack user groups of a user (cached by the Slack front end); none elsewhere.
    groups_of: GroupResolver = no_groups
    replica: str = "mailqbot"
    # This process's Prometheus metrics (the monitor and the pipeline count into them).
    metrics: Metrics = field(default_factory=Metrics)


class LiveServices:
    """The current ``Services`` of a long-running process, replaced whole, never edited."""

    def __init__(self, services: Services) -> None:
        self._current = services

    def now(self) -> Services:
        """The services as they are now: hold on to them for one piece of work."""
        return self._current

    def update(self, **changes: Any) -> Services:
        """Replace the current services with a copy carrying ``changes``; return it."""
        self._current = dataclasses.replace(self._current, **changes)
        return self._current
