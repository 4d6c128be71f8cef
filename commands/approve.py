"""``/mailq approve PLAN`` and the Approve button: approve another person's plan.

When the last approval needed arrives, the plan is claimed and run at once, once.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.actions import approvals
from bot.app.registry import Argument, CommandSpec
from commands._act import ActionReply

if TYPE_CHECKING:
    from bot.context import Context

USAGE = "/mailq approve PLAN"


@dataclass(frozen=True)
class Args:
    plan: str


def parse(ns: argparse.Namespace) -> Args:
    return Args(approvals.plan_id(ns.plan))


async def run(args: Args, ctx: Context) -> ActionReply:
    plan = await approvals.decide(ctx, args.plan, "approve")
    if plan.status == "approved":
        host = ctx.services.inventory.get(plan.host)
        plan = await approvals.run_approved(ctx, host, plan.id)
    return ActionReply(plan=plan)


SPEC = CommandSpec(
    name="approve",
    summary="Approve a plan someone else made; it runs when enough people approved.",
    permission="approve",
    template="action",
    examples=("/mailq approve p3f9a0c12de",),
    arguments=(Argument("plan", help="the plan id from the approval message", metavar="PLAN"),),
    parse=parse,
    run=run,
)
