"""``/mailq summary HOST``: counts per queue, deferred mail by reason class, ages, oldest."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.mta.summary import QueueSummary
from bot.queue import read_summary
from commands import Argument, CommandSpec

if TYPE_CHECKING:
    from bot.pipeline import Context


@dataclass(frozen=True)
class HostSummary:
    host: str
    summary: QueueSummary


async def run(args: argparse.Namespace, ctx: Context) -> HostSummary:
    services = ctx.services
    host = services.inventory.get(args.target)
    summary = await read_summary(
        services.executor, host, services.clock(), ctx.progress, ctx.remote
    )
    return HostSummary(host.name, summary)


SPEC = CommandSpec(
    name="summary",
    summary="Queue counts, deferred mail grouped by reason and destination, ages, oldest message.",
    permission="read",
    template="summary",
    examples=("/mailq summary mx1",),
    arguments=(Argument("target", help="a host from the inventory", metavar="HOST"),),
    run=run,
    targets_hosts=True,
    order=10,
)
