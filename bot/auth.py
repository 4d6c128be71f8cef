"""Authorisation: one filter that fails closed.

A grant gives a role to Slack users or user groups, on all hosts or on named hosts/groups,
and optionally only in named channels. Roles map to permissions; anything not granted is
denied. Only users of our own team(s) are considered at all. A guest (Slack's restricted
or ultra-restricted accounts, or anyone whose account could not be looked up) holds read
permissions at most, whatever the grants say. The console (a local operator who already
holds the bot's keys) and the bot itself (a replica settling plans, the alert scheduler)
are trusted as ``admin`` (and audited as such).

Every check goes through ``grants_for`` (which grants hold for this caller, here) and
``covers`` (which hosts a grant reaches): commands, approvals, plan listings and alert
buttons ask the same question the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from bot.inventory import Grant, Inventory

if TYPE_CHECKING:
    from bot.context import Identity

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


def covers(grant: Grant, inventory: Inventory) -> frozenset[str] | None:
    """The hosts ``grant`` reaches; None for every host (``all``)."""
    if "all" in grant.hosts:
        return None
    return frozenset(h.name for target in grant.hosts for h in inventory.select(target))


def team_allowed(who: Identity, inventory: Inventory, allowed_teams: Iterable[str]) -> bool:
    teams = set(allowed_teams) | set(inventory.config.access.team_ids)
    return who.team_id is not None and who.team_id in teams


def grants_for(
    who: Identity, inventory: Inventory, allowed_teams: Iterable[str]
) -> Iterator[Grant]:
    """The grants that hold for ``who`` here: their team is ours, they (or a group of
    theirs) are a member, and the grant is valid in their channel. Nothing for another
    team. (Trusted local callers need no grants: see ``permitted``.)"""
    if not team_allowed(who, inventory, allowed_teams):
        return
    members = {who.user_id} | who.groups
    for grant in inventory.config.access.grants:
        if not members & set(grant.members):
            continue
        if grant.channels is not None and who.channel_id not in grant.channels:
            continue
        yield grant


def _grants_with(
    who: Identity, permission: str, inventory: Inventory, allowed_teams: Iterable[str]
) -> Iterator[Grant]:
    if who.is_guest and permission not in GUEST_PERMISSIONS:
        return
    for grant in grants_for(who, inventory, allowed_teams):
        if permission in ROLE_PERMISSIONS[grant.role]:
            yield grant


def hosts_permitted(
    who: Identity, permission: str, inventory: Inventory, allowed_teams: Iterable[str]
) -> frozenset[str]:
    """Every inventory host on which ``who`` holds ``permission`` here."""
    if who.is_local:
        return frozenset(inventory.names)
    hosts: set[str] = set()
    for grant in _grants_with(who, permission, inventory, allowed_teams):
        reach = covers(grant, inventory)
        if reach is None:
            return frozenset(inventory.names)
        hosts |= reach
    return frozenset(hosts)


def permitted(
    who: Identity,
    permission: str,
    hosts: list[str],
    inventory: Inventory,
    allowed_teams: Iterable[str],
) -> bool:
    """True only if one grant for this user (or one of their groups), valid in this
    channel, covers every host; never for another team, never beyond reading for a guest.
    With no hosts: whether any grant gives the permission at all."""
    if who.is_local:
        return True
    wanted = set(hosts)
    for grant in _grants_with(who, permission, inventory, allowed_teams):
        reach = covers(grant, inventory)
        if reach is None or wanted <= reach:
            return True
    return False


def holds_role(
    who: Identity, role: str, host: str, inventory: Inventory, allowed_teams: Iterable[str]
) -> bool:
    """True if a grant of ``role`` holds for ``who`` here and reaches ``host``."""
    if who.is_guest and not ROLE_PERMISSIONS[role] <= GUEST_PERMISSIONS:
        return False
    for grant in grants_for(who, inventory, allowed_teams):
        if grant.role != role:
            continue
        reach = covers(grant, inventory)
        if reach is None or host in reach:
            return True
    return False
