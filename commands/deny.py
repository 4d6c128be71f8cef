"""``/mailq deny PLAN [why...]`` and the Deny button: end a plan; nothing runs.

Any approver may deny; the requester may withdraw their own plan the same way.
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


@dataclass(frozen=True)
class Args:
    plan: str
    note: str


def parse(ns: argparse.Namespace) -> Args:
    return Args(approvals.plan_id(ns.plan), " ".join(ns.why)[:500])


async def run(args: Args, ctx: Context) -> ActionReply:
    return ActionReply(plan=await approvals.decide(ctx, args.plan, "deny", args.note))


SPEC = CommandSpec(
    name="deny",
    summary="Deny a plan (or withdraw your own); nothing is changed.",
    permission="read",
    template="action",
    examples=("/mailq deny p3f9a0c12de wrong domain",),
    arguments=(
        Argument("plan", help="the plan id from the approval message", metavar="PLAN"),
        Argument(
            "why", help="why, for the requester and the audit trail", metavar="[WHY]", nargs="*"
        ),
    ),
    parse=parse,
    run=run,
)
