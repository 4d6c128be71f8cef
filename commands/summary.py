"""``/mailq summary HOST|GROUP|all``: one host's queue in depth, or a fleet at a glance.

For one host: counts per queue, deferred mail by reason class, qshape's table of deferred
recipients by destination and age, sender domains, how long until the oldest message
reaches its queue lifetime, and the deferred spool's disk use. For a group or ``all``:
fleet totals and one line per host, worst first.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.registry import CommandSpec, HostArg
from bot.fleet import FleetReader, FleetSummary, totals
from bot.postfix.reader import read_host
from bot.postfix.spool import DiskUse, Expiry, HostSettings, first_expiry
from bot.postfix.summary import QueueSummary

if TYPE_CHECKING:
    from bot.context import Context

SHAPE_ROWS_SHOWN = 10  # qshape rows in the message; the attached file has up to 200


@dataclass(frozen=True)
class HostSummary:
    host: str
    summary: QueueSummary
    settings: HostSettings | None = None
    disk: DiskUse | None = None
    kind: str = "host"

    @property
    def expiry(self) -> Expiry | None:
        if self.settings is None:
            return None
        oldest = self.summary.oldest_deferred
        return first_expiry(oldest.regular, oldest.bounce, self.settings)

    @property
    def shape_rows_shown(self) -> int:
        return SHAPE_ROWS_SHOWN

    @property
    def needs_file(self) -> bool:
        shapes = (self.summary.deferred_shape, self.summary.deferred_sender_shape)
        return any(shape.domains > SHAPE_ROWS_SHOWN for shape in shapes)

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(self.summary.now))
        return f"qshape-{self.host}-{stamp}.txt"

    @property
    def file_title(self) -> str:
        return f"Deferred queue on {self.host} by domain and age (qshape)"


@dataclass(frozen=True)
class Args:
    target: str  # a host, a group, or all


def parse(ns: argparse.Namespace) -> Args:
    return Args(ns.target)


async def run(args: Args, ctx: Context) -> HostSummary | FleetSummary:
    services = ctx.services
    if args.target in services.inventory.names:
        host = services.inventory.get(args.target)
        reading = await read_host(ctx.remote, host, services.clock(), disk=True)
        return HostSummary(host.name, reading.summary, reading.settings, reading.disk)
    return await _fleet(args.target, ctx)


async def _fleet(target: str, ctx: Context) -> FleetSummary:
    services = ctx.services
    hosts = services.inventory.select(target)
    started = time.monotonic()
    reader = FleetReader(ctx.remote, services.clock(), ctx.progress)
    lines = await reader.read(hosts)
    elapsed = time.monotonic() - started
    return FleetSummary(target, reader.now, lines, totals(lines), elapsed)


SPEC = CommandSpec(
    name="summary",
    summary="Queue counts, deferred mail by reason, destination and age (qshape), oldest "
    "message and its lifetime, spool disk use; for a group or `all`, one line per host.",
    permission="read",
    template="summary",
    examples=("/mailq summary mx1", "/mailq summary edge", "/mailq summary all"),
    arguments=(
        HostArg(
            "target", help="a host, a host group, or `all`", metavar="HOST|GROUP|all", groups=True
        ),
    ),
    parse=parse,
    run=run,
)
