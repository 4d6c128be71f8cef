"""Authorisation: one filter that fails closed.

A grant gives a role to Slack users or user groups, on all hosts or on named hosts/groups,
and optionally only in named channels. Roles map to permissions; anything not granted is
denied. Only users of our own team(s) are considered at all. A guest (Slack's restricted
or ultra-restricted accounts, or anyone whose account could not be looked up) holds read
permissions at most, whatever the grants say. The console is a local operator who already
holds the bot's keys, so it is trusted as ``admin`` (and audited as such).
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
# What a guest may ever do, whatever their grants say.
GUEST_PERMISSIONS = frozenset({"read"})
# Put into ``Identity.groups`` by the Slack front end for a guest or an account it could not
# look up. No grant can name it (grant members must look like Slack ids).
GUEST = "!guest"


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
        return self.source == "console"

    @property
    def is_guest(self) -> bool:
        return GUEST in self.groups


def _grant_covers(grant: Grant, hosts: list[str], inventory: Inventory) -> bool:
    if "all" in grant.hosts:
        return True
    granted: set[str] = set()
    for target in grant.hosts:
        granted.update(h.name for h in inventory.select(target))
    return set(hosts) <= granted


def _grant_applies(
    grant: Grant, who: Identity, permission: str, hosts: list[str], inventory: Inventory
) -> bool:
    if permission not in ROLE_PERMISSIONS[grant.role]:
        return False
    if not ({who.user_id} | who.groups) & set(grant.members):
        return False
    if grant.channels is not None and who.channel_id not in grant.channels:
        return False
    return _grant_covers(grant, hosts, inventory)


def team_allowed(who: Identity, access: Access, allowed_teams: set[str]) -> bool:
    return who.team_id is not None and who.team_id in (allowed_teams | set(access.team_ids))


def permitted(
    who: Identity,
    permission: str,
    hosts: list[str],
    access: Access,
    inventory: Inventory,
    allowed_teams: set[str],
) -> bool:
    """True only if a grant for this user (or one of their groups), valid in this channel,
    covers every host; never for another team, never beyond reading for a guest."""
    if who.is_local:
        return True
    if not team_allowed(who, access, allowed_teams):
        return False
    if who.is_guest and permission not in GUEST_PERMISSIONS:
        return False
    return any(_grant_applies(g, who, permission, hosts, inventory) for g in access.grants)
