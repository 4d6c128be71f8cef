"""What the queue-changing commands (flush, requeue, hold, release, purge) share.

Each takes one host and IDs, a filter (``bot.postfix.filter``'s words), or the whole queue, plus
``why=...``. An action class that needs approval (purge always; others if the config says
so) becomes a stored plan that another person approves; the rest run at once on exactly the
messages just listed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.actions import approvals
from bot.actions import rules as plans
from bot.actions.perform import ActionResult, flush_all, perform
from bot.actions.rules import PlanView
from bot.actions.select import Action, Selection, parse_selection, select
from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.context import Context


@dataclass(frozen=True)
class ActionReport:
    """An action that ran at once (no approval needed)."""

    host: str
    action: str
    selector: str
    preview: dict[str, Any]
    result: ActionResult
    now: float


@dataclass(frozen=True)
class ActionReply:
    """The model of every action template: a plan (pending or run) or an immediate report."""

    plan: PlanView | None = None
    report: ActionReport | None = None

    @property
    def kind(self) -> str:
        return "plan" if self.plan is not None else "report"


@dataclass(frozen=True)
class ActArgs:
    """One host and what to act on there."""

    target: str
    selection: Selection


def _parse(action: Action, ns: argparse.Namespace, usage: str) -> ActArgs:
    selection = parse_selection(action, ns.words, usage)
    if action == "purge" and not selection.reason:
        raise UsageError(
            'Say why, for the approver and the audit trail: add `why="ticket or reason"`.',
            usage,
        )
    return ActArgs(ns.target, selection)


async def run_action(action: Action, args: ActArgs, ctx: Context, usage: str) -> ActionReply:
    selection = args.selection
    host = ctx.services.inventory.get(args.target)
    config = ctx.services.inventory.config
    needs_plan = plans.needs_approval(config, action)
    if needs_plan and not selection.reason:
        raise UsageError(f'`{action}` needs approval here: add `why="ticket or reason"`.', usage)
    now = ctx.services.clock()
    if action == "flush" and selection.everything:
        result = await flush_all(ctx, host)
        return ActionReply(report=ActionReport(host.name, action, "all", {}, result, now))
    items, preview = await select(ctx, host, action, selection)
    if needs_plan and items:
        cls, why = plans.action_class(config, action, selection, len(items), preview["in_queues"])
        if why:
            preview["class_reason"] = why
        return ActionReply(
            plan=await approvals.create(ctx, host, action, cls, selection, items, preview)
        )
    result = await perform(ctx, host, action, items, fresh=True)
    selector = " ".join(selection.words())
    return ActionReply(report=ActionReport(host.name, action, selector, preview, result, now))


SELECTION_HELP = "queue IDs, filter words (domain= sender= reason= older= queue=), why=TEXT"


def action_spec(action: Action, summary: str, examples: tuple[str, ...],
                metavar: str) -> CommandSpec[ActArgs]:  # fmt: skip
    usage = f"/mailq {action} HOST {metavar}"

    async def run(args: ActArgs, ctx: Context) -> ActionReply:
        return await run_action(action, args, ctx, usage)

    def parse(ns: argparse.Namespace) -> ActArgs:
        return _parse(action, ns, usage)

    return CommandSpec(
        name=action,
        summary=summary,
        permission="act",
        template="action",
        examples=examples,
        parse=parse,
        run=run,
        arguments=(
            HostArg("target", help="a host from the inventory", metavar="HOST"),
            Argument("words", help=SELECTION_HELP, metavar=metavar, nargs="*"),
        ),
    )
