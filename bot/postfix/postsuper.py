"""Command lines that change the queue, and a pure parser of what ``postsuper`` reports.

``postsuper`` exits 0 whether it touched every ID, some or none: the only evidence is on
stderr, one line per message it changed (``postsuper: 4B7D3C1A2B: removed``) and a count
(``postsuper: Deleted: 3 messages``). The caller compares both with what it asked for.

Queue IDs are read from standard input (``postsuper -d -``), never put on the command line,
and the queue name limits the change to the queue the message was seen in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.errors import ParseError, UsageError
from bot.postfix.models import is_queue_id
from bot.remote.command import RemoteCommand

POSTSUPER = "/usr/sbin/postsuper"
POSTQUEUE = "/usr/sbin/postqueue"
# Deleting or moving 100k queue files takes well under a minute; the host's
# command_timeout still applies (the executor takes the smaller limit).
CHANGE_TIMEOUT = 600.0
Change = Literal["purge", "hold", "release", "requeue"]
CHANGE_QUEUES = ("deferred", "hold", "incoming", "active")  # what deploy/sudoers.mailqbot allows


@dataclass(frozen=True)
class _Verb:
    flag: str
    done: str  # per message: "postsuper: ID: removed"
    total: str  # the count: "postsuper: Deleted: 3 messages"


VERBS: dict[Change, _Verb] = {
    "purge": _Verb("-d", "removed", "Deleted"),
    "hold": _Verb("-h", "placed on hold", "Placed on hold"),
    "release": _Verb("-H", "released from hold", "Released from hold"),
    "requeue": _Verb("-r", "requeued", "Requeued"),
}
_COUNT = re.compile(r"postsuper: (?P<verb>[A-Z][a-z ]+): (?P<n>\d{1,12}) messages?")
_DONE = re.compile(r"postsuper: (?P<id>[0-9A-Za-z]{6,40}): (?P<verb>[a-z ]+)")


def change(action: Change, queue: str, *, sudo: bool) -> RemoteCommand:
    """``[sudo -n] postsuper -d|-h|-H|-r - QUEUE``: the IDs come on standard input."""
    if queue not in CHANGE_QUEUES:
        raise UsageError(f"mailqbot changes messages only in {', '.join(CHANGE_QUEUES)}.")
    argv = (POSTSUPER, VERBS[action].flag, "-", queue)
    return RemoteCommand(argv=argv, sudo=sudo, remote_timeout=CHANGE_TIMEOUT, changes_queue=True)


def flush_all() -> RemoteCommand:
    """``postqueue -f``: try every deferred message now (no root needed)."""
    return RemoteCommand(argv=(POSTQUEUE, "-f"), remote_timeout=60.0, changes_queue=True)


def deliver(queue_id: str) -> RemoteCommand:
    """``postqueue -i ID``: try one message now."""
    if not is_queue_id(queue_id):
        raise UsageError("That is not a Postfix queue ID.")
    return RemoteCommand(argv=(POSTQUEUE, "-i", queue_id), remote_timeout=60.0, changes_queue=True)


def ids_input(queue_ids: list[str]) -> bytes:
    """Standard input for ``postsuper ... -``: one validated ID per line."""
    for queue_id in queue_ids:
        if not is_queue_id(queue_id):
            raise ValueError(f"refusing to send {queue_id!r} to postsuper: not a queue ID")
    return "".join(f"{q}\n" for q in queue_ids).encode()


@dataclass(frozen=True)
class PostsuperReport:
    """What ``postsuper`` said it did: the IDs it named, its own count, anything else."""

    changed: tuple[str, ...]
    count: int
    other: tuple[str, ...]  # warnings and lines not understood, as printed


def parse_report(action: Change, stderr: str) -> PostsuperReport:
    """Parse ``postsuper``'s stderr; ``ParseError`` if it never stated its count."""
    verb = VERBS[action]
    changed: list[str] = []
    other: list[str] = []
    count: int | None = None
    for line in stderr.splitlines():
        line = line.rstrip()
        counted = _COUNT.fullmatch(line)
        if counted and counted["verb"] == verb.total:
            count = (count or 0) + int(counted["n"])
            continue
        done = _DONE.fullmatch(line)
        if done and done["verb"] == verb.done and is_queue_id(done["id"]):
            changed.append(done["id"])
        elif line:
            other.append(line[:500])
    if count is None:
        raise ParseError(f"postsuper did not report how many messages it {verb.done}.")
    return PostsuperReport(tuple(changed), count, tuple(other))
