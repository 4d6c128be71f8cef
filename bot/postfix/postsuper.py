"""A pure parser of what ``postsuper`` reports (its command lines are in ``tools``).

``postsuper`` exits 0 whether it touched every ID, some or none: the only evidence is on
stderr, one line per message it changed (``postsuper: 4B7D3C1A2B: removed``) and a count
(``postsuper: Deleted: 3 messages``). The caller compares both with what it asked for.

Queue IDs are read from standard input (``postsuper -d -``), never put on the command line,
and the queue name limits the change to the queue the message was seen in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import ParseError
from bot.postfix.models import is_queue_id
from bot.postfix.tools import Change


@dataclass(frozen=True)
class _Verb:
    done: str  # per message: "postsuper: ID: removed"
    total: str  # the count: "postsuper: Deleted: 3 messages"


VERBS: dict[Change, _Verb] = {
    "purge": _Verb("removed", "Deleted"),
    "hold": _Verb("placed on hold", "Placed on hold"),
    "release": _Verb("released from hold", "Released from hold"),
    "requeue": _Verb("requeued", "Requeued"),
}
_COUNT = re.compile(r"postsuper: (?P<verb>[A-Z][a-z ]+): (?P<n>\d{1,12}) messages?")
_DONE = re.compile(r"postsuper: (?P<id>[0-9A-Za-z]{6,40}): (?P<verb>[a-z ]+)")


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
