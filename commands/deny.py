"""``/mailq deny PLAN [why...]`` and the Deny button: end a plan; nothing runs.

Any approver may deny; the requester may withdraw their own plan the same way.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.actions import approvals
from commands import Argument, CommandSpec
from commands._act import ActionReply

if TYPE_CHECKING:
    from bot.context import Context


async def run(args: argparse.Namespace, ctx: Context) -> ActionReply:
    note = " ".join(args.why)[:500]
    return ActionReply(plan=await approvals.decide(ctx, args.plan, "deny", note))


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
    run=run,
    validate=approvals.check_plan_id,
)
