"""Checks across the config file that its schema alone cannot make.

``problems(raw)`` reads the parsed TOML as it is (before the schema) and returns every
mistake it finds as ``location: what is wrong and what to write instead``, so one run of
``mailqbot check-config`` lists them all, next to the schema's own errors. With
``deployed=True`` it also checks what must hold where the bot runs: the key and known_hosts
files exist and can be read, and no two hosts share an address and port (without it, a
config can describe a fleet simulated on one test server, or be checked on another
machine); with ``slack=True``, that some grant lets someone use the bot from Slack (the
terminal console is trusted as admin and needs none).

``Seconds`` is the config's duration type: ``"90s"``, ``"1h30m"``, ``"1w"`` (``bot.text``'s
grammar). A plain number from a config file is refused here (its unit is unknown); Python
callers may still pass seconds as a number.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from bot.text import DURATION_FORMS, duration_problem, parse_seconds


def _seconds(value: object) -> object:
    if isinstance(value, str):
        seconds = parse_seconds(value)
        if seconds is None:
            raise ValueError(f"{value[:40]!r} is not a duration; write one like {DURATION_FORMS}")
        return seconds
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]

# Where the config holds a duration (a number without a unit is refused there).
DURATION_KEYS: tuple[tuple[str, ...], ...] = (
    ("ssh", "connect_timeout"),
    ("ssh", "login_timeout"),
    ("ssh", "command_timeout"),
    ("monitor", "interval"),
    ("monitor", "cooldown"),
    ("monitor", "tick"),
    ("monitor", "lease_ttl"),
    ("monitor", "rules", "growth_window"),
    ("monitor", "notes_every"),
    ("monitor", "grouping", "window"),
    ("monitor", "budget", "gap"),
    ("monitor", "budget", "edit_gap"),
    ("monitor", "silences", "longest"),
    ("retention", "samples_raw"),
    ("retention", "samples_fine"),
    ("retention", "samples_max"),
    ("retention", "command_runs"),
    ("retention", "plans"),
    ("retention", "every"),
    ("diagnose", "check_timeout"),
    ("diagnose", "budget"),
)
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"
)
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
_TEAM_ID = re.compile(r"T[A-Z0-9]{2,}")
_PERSON = re.compile(r"[UW][A-Z0-9]{2,}")
_ROLES = ("viewer", "operator", "approver", "admin")


def problems(raw: Mapping[str, Any], *, deployed: bool = False, slack: bool = False) -> list[str]:
    """Every cross-field mistake in ``raw`` (the parsed TOML), each with its location."""
    found = [
        *_durations(raw),
        *_hosts(raw),
        *_group_references(raw),
        *_slack_ids(raw),
        *_approval_rules(raw),
    ]
    if deployed:
        found += [*_duplicates(raw), *_files(raw)]
    if slack:
        found += list(_grants(raw))
    return found


# -- reading the raw TOML defensively (the schema reports wrong types itself) ---------------


def _table(raw: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    value: Any = raw
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _host_entries(raw: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for i, entry in enumerate(_list(raw.get("hosts"))):
        if isinstance(entry, Mapping):
            yield i, entry


def _groups(raw: Mapping[str, Any]) -> set[str]:
    return {
        g
        for _, entry in _host_entries(raw)
        for g in _list(entry.get("groups"))
        if isinstance(g, str)
    }


# -- the checks --------------------------------------------------------------------------------


def _durations(raw: Mapping[str, Any]) -> Iterator[str]:
    paths = list(DURATION_KEYS)
    for name in _table(raw, "monitor", "groups"):
        paths += [("monitor", "groups", name, "interval")]
        paths += [("monitor", "groups", name, "rules", "growth_window")]
    for path in paths:
        table = _table(raw, *path[:-1])
        if path[-1] in table and (why := duration_problem(table[path[-1]])) is not None:
            yield f"{'.'.join(path)}: {why}"


def _hosts(raw: Mapping[str, Any]) -> Iterator[str]:
    if _table(raw, "ssh").get("user") == "":
        yield "ssh.user: is empty; write the login name the bot uses on the hosts"
    for name, group in _table(raw, "ssh", "groups").items():
        if isinstance(group, Mapping) and group.get("user") == "":
            yield (
                f"ssh.groups.{name}.user: is empty; write a login name, or leave it out for "
                "ssh.user"
            )
    for i, entry in _host_entries(raw):
        where = f"hosts[{i}]"
        address = entry.get("address")
        if isinstance(address, str) and not _is_address(address):
            yield (
                f"{where}.address: {address[:60]!r} is neither a host name nor an IP "
                "address; write one like mx1.example.com or 192.0.2.10"
            )
        if entry.get("user") == "":
            yield f"{where}.user: is empty; write a login name, or leave it out for ssh.user"
        for j, group in enumerate(_list(entry.get("groups"))):
            if group == "all" or (isinstance(group, str) and (not group.strip() or " " in group)):
                yield (
                    f"{where}.groups[{j}]: {group!r} cannot name a group ('all' means every "
                    "host, and names have no spaces); write one like 'edge' or 'eu-relays'"
                )


def _duplicates(raw: Mapping[str, Any]) -> Iterator[str]:
    seen: dict[tuple[str, object], str] = {}
    for i, entry in _host_entries(raw):
        address = entry.get("address")
        if not isinstance(address, str):
            continue
        key = (address.lower().rstrip("."), _port(raw, entry))
        if key in seen:
            yield (
                f"hosts[{i}].address: {address} (port {key[1]}) is already host {seen[key]!r}; "
                "give each host its own address, or remove the duplicate"
            )
        seen.setdefault(key, str(entry.get("name")))


def _port(raw: Mapping[str, Any], entry: Mapping[str, Any]) -> object:
    """The host's SSH port as the inventory resolves it: its own, else that of its first
    group with an ``[ssh.groups.NAME]`` section, else ``[ssh]``'s, else 22."""
    if "port" in entry:
        return entry["port"]
    groups = _table(raw, "ssh", "groups")
    first = next(
        (g for g in _list(entry.get("groups")) if isinstance(g, str) and g in groups), None
    )
    if first is not None and "port" in _table(groups, first):
        return _table(groups, first)["port"]
    return _table(raw, "ssh").get("port", 22)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOST_NAME.fullmatch(text)) and not text.replace(".", "").isdigit()
    return True


def _group_references(raw: Mapping[str, Any]) -> Iterator[str]:
    groups = _groups(raw)
    names = {e.get("name") for _, e in _host_entries(raw)}
    known = ", ".join(sorted(groups)) or "none"
    for name in _table(raw, "monitor", "groups"):
        if name not in groups:
            yield f"monitor.groups.{name}: no host is in group {name!r} (groups: {known})"
    for name in _table(raw, "diagnose", "sending_ips"):
        if name not in groups and name not in names:
            yield (
                f"diagnose.sending_ips.{name}: names no host or group (groups: {known}); "
                "write a host's or a group's name"
            )


def _slack_ids(raw: Mapping[str, Any]) -> Iterator[str]:
    channel = _table(raw, "slack").get("alert_channel")
    if isinstance(channel, str) and not _CHANNEL_ID.fullmatch(channel):
        yield (
            f"slack.alert_channel: {channel[:40]!r} is not a channel ID; give the ID "
            "(C… or G…, under the channel's name > About in Slack), not its name"
        )
    for i, team in enumerate(_list(_table(raw, "access").get("team_ids"))):
        if not (isinstance(team, str) and _TEAM_ID.fullmatch(team)):
            yield (
                f"access.team_ids[{i}]: {str(team)[:40]!r} is not a team ID; give the "
                "workspace's ID (T…, shown by auth.test), not its name or domain"
            )


def _approval_rules(raw: Mapping[str, Any]) -> Iterator[str]:
    for name, rule in _table(raw, "actions").items():
        if not isinstance(rule, Mapping):
            continue
        where = f"actions.{name}"
        if "approvals" in rule and rule.get("approval") is not True:
            yield (
                f"{where}.approvals: has no effect without approval = true; add approval = "
                "true, or remove approvals"
            )
        approvers = rule.get("approvers")
        if approvers == []:
            yield (
                f"{where}.approvers: is empty, so nobody can ever approve; name users (U…), "
                "user groups (S…) or roles (role:approver)"
            )
            continue
        possible = _possible_approvers(raw, approvers)
        needed = rule.get("approvals", 1)
        if (
            rule.get("approval") is True
            and possible is not None
            and isinstance(needed, int)
            and needed > len(possible)
        ):
            yield (
                f"{where}.approvals: needs {needed} approval(s), but only {len(possible)} "
                f"people can approve ({', '.join(sorted(possible)) or 'nobody'}); lower "
                "approvals or name more approvers"
            )


def _possible_approvers(raw: Mapping[str, Any], approvers: object) -> set[str] | None:
    """The people ``approvers`` can name, or None if a user group makes it open-ended."""
    if not isinstance(approvers, list):
        approvers = ["role:approver", "role:admin"]
    people: set[str] = set()
    grants = [g for g in _list(_table(raw, "access").get("grants")) if isinstance(g, Mapping)]
    for who in approvers:
        if not isinstance(who, str):
            return None
        members = (
            [m for g in grants if g.get("role") == who[5:] for m in _list(g.get("members"))]
            if who.startswith("role:")
            else [who]
        )
        for member in members:
            if not (isinstance(member, str) and _PERSON.fullmatch(member)):
                return None  # a user group (S…): how many it holds is known only at run time
            people.add(member)
    return people


def _files(raw: Mapping[str, Any]) -> Iterator[str]:
    tables = [("ssh", _table(raw, "ssh"))]
    tables += [(f"ssh.groups.{name}", _table(raw, "ssh", "groups", name))
               for name in _table(raw, "ssh", "groups")]  # fmt: skip
    tables += [(f"hosts[{i}]", entry) for i, entry in _host_entries(raw)]
    for where, table in tables:
        for key in ("private_key", "known_hosts"):
            path = table.get(key)
            if isinstance(path, str) and (why := _unreadable(Path(path), key)) is not None:
                yield f"{where}.{key}: {path} {why}"


def _unreadable(path: Path, key: str) -> str | None:
    if not path.exists():
        make = (
            f"ssh-keygen -t ed25519 -f {path}"
            if key == "private_key"
            else "mailqbot hosts scan all --accept"
        )
        return f"does not exist; create it ({make}) or fix the path"
    if not path.is_file():
        return "is not a file; give the path of the file itself"
    if not os.access(path, os.R_OK):
        return "cannot be read by this user; let the bot's user read it (chmod/chown)"
    return None


def _grants(raw: Mapping[str, Any]) -> Iterator[str]:
    if not _list(_table(raw, "access").get("grants")):
        yield (
            "access.grants: there are none, so nobody may use the bot; add [[access.grants]] "
            f"with a role ({', '.join(_ROLES)}) and members (U…/S…)"
        )
