"""What a request is, who made it, and what a command's ``run`` receives.

``Request`` is what a front end hands the pipeline; ``Identity`` is who asked, as
authorisation sees them; ``Context`` binds both to the services, a progress callback and
the request's audited remote gateway (``ctx.remote``: every remote call of the request goes
through it, is checked against the caller's hosts, and is recorded).

``ctx.may(permission, hosts)`` is the one question every scope check asks; it is answered by
``bot.auth`` from the config's grants, for this caller in this channel.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot import auth
from bot.errors import PermissionDenied

if TYPE_CHECKING:
    from bot.app.services import Services
    from bot.remote.audited import Change, Remote

Permission = Literal["read", "act", "approve", "admin"]
Progress = Callable[[str], Awaitable[None]]
# Front ends whose requests come from someone who already holds the bot's keys (the
# terminal) or from the bot itself (a replica settling plans, the alert scheduler).
TRUSTED_SOURCES = frozenset({"console", "replica", "scheduler"})


async def no_progress(_text: str) -> None:
    return None


@dataclass(frozen=True)
class Request:
    source: str  # "slack" | "console" | "scheduler" | "replica"
    user_id: str
    text: str
    team_id: str | None = None
    enterprise_id: str | None = None
    channel_id: str | None = None
    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # The chat message that shows this request's result (set by the front end once it is
    # posted, before the command runs); the audit trail keeps it.
    message_link: str | None = None
    # The front end could not check whether this delivery was seen before (its database was
    # unreachable): anything that changes a queue or decides a plan is refused.
    replay_unchecked: bool = False


@dataclass(frozen=True)
class Identity:
    source: str
    user_id: str
    team_id: str | None
    enterprise_id: str | None = None
    groups: frozenset[str] = frozenset()
    channel_id: str | None = None

    @property
    def is_local(self) -> bool:
        """Trusted without grants: the terminal operator, or the bot acting by itself."""
        return self.source in TRUSTED_SOURCES

    @property
    def is_guest(self) -> bool:
        return auth.GUEST in self.groups

    @classmethod
    def of(cls, request: Request, groups: frozenset[str] = frozenset()) -> Identity:
        return cls(request.source, request.user_id, request.team_id, request.enterprise_id,
                   groups, channel_id=request.channel_id)  # fmt: skip


@dataclass
class Context:
    """What a command's ``run`` receives besides its arguments."""

    services: Services
    request: Request
    identity: Identity
    progress: Progress = no_progress
    # The permission the command runs under: every remote call is scoped by it.
    permission: Permission = "read"
    _remote: Remote | None = field(default=None, repr=False)
    _allowed: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def remote(self) -> Remote:
        """The request's audited gateway to its hosts (made on first use)."""
        if self._remote is None:
            from bot.remote.audited import Remote
            from bot.stores.audit import RequestJournal

            self._remote = Remote.for_request(self, RequestJournal.of(self))
        return self._remote

    def remote_records(self) -> list[dict[str, Any]]:
        """What the audit trail keeps of this request's remote calls."""
        return [] if self._remote is None else self._remote.records_json()

    def changes_made(self) -> list[Change]:
        """The queue changes this request ran (or may have run) on a host."""
        return [] if self._remote is None else [c for c in self._remote.changes if c.ran]

    def may(self, permission: Permission, hosts: Iterable[str] = ()) -> bool:
        """True if the caller holds ``permission`` on every one of ``hosts`` here."""
        names = set(hosts)
        services = self.services
        if not names:
            return auth.permitted(self.identity, permission, [], services.inventory,
                                  services.allowed_teams)  # fmt: skip
        return names <= self.hosts_with(permission)

    def hosts_with(self, permission: Permission) -> frozenset[str]:
        """Every inventory host on which the caller holds ``permission`` here."""
        allowed = self._allowed.get(permission)
        if allowed is None:
            services = self.services
            allowed = self._allowed[permission] = auth.hosts_permitted(
                self.identity, permission, services.inventory, services.allowed_teams
            )
        return allowed

    def require(self, permission: Permission, hosts: Iterable[str], what: str) -> None:
        """Raise ``PermissionDenied`` (saying ``what`` was refused) unless ``may``."""
        names = sorted(set(hosts))
        if not self.may(permission, names):
            where = f" on {', '.join(names[:10])}" if names else ""
            raise PermissionDenied(
                f"You may not {what}{where}. Ask a mailqbot admin for a role that grants it; "
                "`/mailq help` lists what you can run."
            )
