"""``/mailq plans [HOST] [all]``: plans waiting for approval, running, or of unknown outcome.

With ``all``, finished plans of the last week are listed too. Each row names the plan, its
host, action, size, requester, state and when it expires; ``approve``/``deny`` take the id.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.actions.rules import epoch
from bot.app.registry import Argument, CommandSpec
from bot.errors import UsageError
from bot.inventory import Inventory
from bot.stores import audit
from bot.stores import plans as store
from bot.stores.audit import AuditEvent
from bot.text import table

if TYPE_CHECKING:
    from bot.context import Context

WINDOW = timedelta(days=7)
LIMIT = 50
USAGE = "/mailq plans [HOST] [all]"


@dataclass(frozen=True)
class PlanRow:
    id: str
    host: str
    action: str
    count: int
    requester: str
    status: str
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class UnknownChange:
    """A queue change recorded as about to run whose outcome was never recorded."""

    seq: int
    host: str
    actor: str
    command: str
    selected: int
    at: float


@dataclass(frozen=True)
class PlanList:
    rows: list[PlanRow]
    host: str | None
    finished_too: bool
    now: float
    unknown: list[UnknownChange]

    def text_table(self) -> str:
        rows = [[r.id, r.host, r.action, f"{r.count:,}", r.requester, r.status] for r in self.rows]
        return table(rows, ["plan", "host", "action", "messages", "requested by", "state"], (3,))

    def unknown_table(self) -> str:
        rows = [[str(c.seq), c.host, c.actor, c.command, f"{c.selected:,}"] for c in self.unknown]
        return table(rows, ["audit seq", "host", "by", "command", "messages"], (0, 4))


@dataclass(frozen=True)
class Args:
    host: str | None
    finished_too: bool


def parse(ns: argparse.Namespace) -> Args:
    words = list(ns.words)
    finished = "all" in words  # no host may be called "all"
    rest = [w for w in words if w != "all"]
    if len(rest) > 1:
        raise UsageError("Name at most one host.", USAGE)
    return Args(rest[0] if rest else None, finished)


def scope(ns: argparse.Namespace, inventory: Inventory) -> list[str]:
    """A named host must be one the caller may read; without one, ``run`` lists only
    plans on hosts the caller may read."""
    host = parse(ns).host
    return [] if host is None else [inventory.get(host).name]


async def run(args: Args, ctx: Context) -> PlanList:
    host, finished = args.host, args.finished_too
    hosts = sorted(ctx.hosts_with("read"))
    if host is not None:
        host = ctx.services.inventory.get(host).name
        hosts = [host] if host in hosts else []
    plans, now = await store.listing(ctx.services.sessions, hosts, WINDOW, finished, LIMIT)
    rows = [PlanRow(p.id, p.host, p.action_class, p.item_count, p.requester, p.status,
                    epoch(p.created_at), epoch(p.expires_at)) for p in plans]  # fmt: skip
    intents = await audit.unsettled_intents(ctx.services.sessions, now - WINDOW, hosts, LIMIT)
    unknown = [_unknown(i) for i in intents]
    return PlanList(rows, host, finished, now.timestamp(), unknown)


def _unknown(intent: AuditEvent) -> UnknownChange:
    detail = dict(intent.detail or {})
    words = str(detail.get("command", "")).split()
    shown = " ".join(words[words.index("-n") + 1 :] if "-n" in words else words[4:])[:80]
    count = detail.get("selection_count")
    return UnknownChange(intent.seq, intent.host or "-", intent.actor, shown,
                         count if isinstance(count, int) else 0, epoch(intent.at))  # fmt: skip


SPEC = CommandSpec(
    name="plans",
    summary="Plans waiting for approval, running, or with an unknown outcome (`all`: the "
    "last week's, finished ones too).",
    permission="read",
    template="plans",
    examples=("/mailq plans", "/mailq plans mx1 all"),
    arguments=(Argument("words", help="a host, and `all`", metavar="[HOST] [all]", nargs="*"),),
    parse=parse,
    run=run,
    scope=scope,
)
