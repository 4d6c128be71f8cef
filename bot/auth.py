"""Authorisation: one filter that fails closed.

A grant gives a role to Slack users or user groups, on all hosts or on named hosts/groups.
Roles map to permissions; anything not granted is denied. The console is a local operator
who already holds the bot's keys, so it is trusted as ``admin`` (and audited as such).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.inventory import Access, Grant, Inventory

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "act"}),
    "approver": frozenset({"read", "approve"}),
    "admin": frozenset({"read", "act", "approve", "admin"}),
}


@dataclass(frozen=True)
class Identity:
    source: str
    user_id: str
    team_id: str | None
    enterprise_id: str | None = None
    groups: frozenset[str] = frozenset()

    @property
    def is_local(self) -> bool:
        return self.source == "console"


def _grant_covers(grant: Grant, hosts: list[str], inventory: Inventory) -> bool:
    if "all" in grant.hosts:
        return True
    granted: set[str] = set()
    for target in grant.hosts:
        granted.update(h.name for h in inventory.select(target))
    return set(hosts) <= granted


def permitted(
    who: Identity,
    permission: str,
    hosts: list[str],
    access: Access,
    inventory: Inventory,
    allowed_teams: set[str],
) -> bool:
    """True only if a grant for this user (or one of their groups) covers every host."""
    if who.is_local:
        return True
    if who.team_id is None or who.team_id not in (allowed_teams | set(access.team_ids)):
        return False
    members = {who.user_id} | who.groups
    for grant in access.grants:
        if permission not in ROLE_PERMISSIONS[grant.role]:
            continue
        if members & set(grant.members) and _grant_covers(grant, hosts, inventory):
            return True
    return False
