"""``/mailq audit [HOST|GROUP|all] [since=24h] [limit=50]``: the newest audit events.

Reading the trail needs the ``admin`` permission on the hosts asked about (``all``, the
default, means every host, and includes events that name no host, such as refusals). The
newest events are in the message; more than fit go into an attached file. The chain itself
is checked by ``mailqbot audit verify``; ``mailqbot audit export`` writes all of it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.app.registry import Argument, CommandSpec
from bot.errors import UsageError
from bot.inventory import Inventory
from bot.stores import audit
from bot.stores.audit import AuditEvent
from bot.text import code, duration, table, utc

if TYPE_CHECKING:
    from bot.context import Context

DEFAULT_SINCE = 24 * 3600
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
SHOWN = 15  # events in the message; the file has up to ``limit``
WHAT_IN_MESSAGE = 60
WHAT_IN_FILE = 300


@dataclass(frozen=True)
class AuditQuery:
    target: str = "all"
    since: int = DEFAULT_SINCE
    limit: int = DEFAULT_LIMIT


def _bad(word: str, why: str) -> UsageError:
    return UsageError(f"`audit`: `{code(word)[:60]}`: {why}", SPEC.usage)


def _option(query: AuditQuery, word: str) -> AuditQuery:
    key, _eq, value = word.partition("=")
    if key == "since":
        seconds = audit.parse_duration(value)
        if seconds is None:
            raise _bad(word, "give a duration like 30m, 24h or 7d (at most 366d).")
        return AuditQuery(query.target, seconds, query.limit)
    if key == "limit":
        if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
            raise _bad(word, f"give a whole number from 1 to {MAX_LIMIT:,}.")
        return AuditQuery(query.target, query.since, int(value))
    raise _bad(word, "options are since= and limit=.")


def parse_query(words: list[str]) -> AuditQuery:
    """At most one host/group/``all`` (first), then ``since=`` and ``limit=``."""
    query = AuditQuery()
    for i, word in enumerate(words):
        if "=" in word:
            query = _option(query, word)
        elif i == 0:
            query = AuditQuery(word, query.since, query.limit)
        else:
            raise _bad(word, "name one host, group or `all`, first.")
    return query


def parse(ns: argparse.Namespace) -> AuditQuery:
    return parse_query(ns.words)


def scope(args: argparse.Namespace, inventory: Inventory) -> list[str]:
    """The hosts whose events are read: the caller needs ``admin`` on each."""
    return [h.name for h in inventory.select(parse_query(args.words).target)]


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: float
    actor: str
    source: str
    action: str
    host: str
    what: str

    def cells(self, width: int) -> list[str]:
        what = self.what if len(self.what) <= width else self.what[: width - 1] + "…"
        return [str(self.seq), utc(self.at), self.actor, self.action, self.host, what]


def _what(detail: dict[str, Any]) -> str:
    if isinstance(detail.get("text"), str):
        return " ".join(str(detail["text"]).split())
    scalars = {k: v for k, v in detail.items() if isinstance(v, str | int | float | bool)}
    return json.dumps(scalars, ensure_ascii=False, sort_keys=True)[:WHAT_IN_FILE]


def _line(row: AuditEvent, unknown: set[int]) -> AuditLine:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    action = f"{row.action} OUTCOME UNKNOWN" if row.seq in unknown else row.action
    return AuditLine(
        row.seq, at.timestamp(), row.actor, row.source, action, row.host or "-",
        _what(dict(row.detail or {})),
    )  # fmt: skip


@dataclass(frozen=True)
class AuditPage:
    query: AuditQuery
    now: float
    total: int
    lines: list[AuditLine]
    # queue changes recorded as about to run, with no recorded outcome, in the window
    unknown: int = 0

    @property
    def since_text(self) -> str:
        return duration(self.query.since)

    @property
    def shown(self) -> list[AuditLine]:
        return self.lines[:SHOWN]

    def table(self, lines: list[AuditLine], width: int = WHAT_IN_MESSAGE) -> str:
        headers = ["seq", "time", "who", "event", "host", "what"]
        return table([line.cells(width) for line in lines], headers, right=(0,))

    def file_table(self) -> str:
        return self.table(self.lines, WHAT_IN_FILE) if len(self.lines) > SHOWN else ""

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(self.now))
        return f"mailq-audit-{self.query.target}-{stamp}.txt"

    @property
    def file_title(self) -> str:
        return f"Audit events on {self.query.target}, last {self.since_text}, newest first"


def _hosts(query: AuditQuery, ctx: Context) -> list[str] | None:
    if query.target == "all":
        return None
    members = [h.name for h in ctx.services.inventory.select(query.target)]
    return sorted({query.target, *members})


async def run(query: AuditQuery, ctx: Context) -> AuditPage:
    now = ctx.services.clock()
    since = datetime.fromtimestamp(now, UTC) - timedelta(seconds=query.since)
    hosts = _hosts(query, ctx)
    rows, total = await audit.recent(ctx.services.sessions, since, hosts, query.limit)
    unknown = await audit.unsettled_intents(ctx.services.sessions, since, hosts, MAX_LIMIT)
    seqs = {row.seq for row in unknown}
    return AuditPage(query, now, total, [_line(r, seqs) for r in rows], len(seqs))


SPEC = CommandSpec(
    name="audit",
    parse=parse,
    summary="The newest audit events (who ran what, where, and how it ended); "
    "admins only. More than fit go into a file.",
    permission="admin",
    template="audit",
    examples=("/mailq audit", "/mailq audit mx1 since=7d", "/mailq audit all limit=500"),
    arguments=(
        Argument(
            "words",
            help="a host, a group or `all` (default), since= (default 24h), limit= (default 50)",
            metavar="[HOST|GROUP|all] [since=24h] [limit=50]",
            nargs="*",
        ),
    ),
    run=run,
    scope=scope,
)
