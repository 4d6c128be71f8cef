"""Plans through their life, each step one conditional write plus its audit event.

    pending --approve (enough)--> approved --claim--> executing --> done | unknown
       |  \\--deny--> denied                                       (failed: nothing changed)
       \\--(expires_at passed)--> expired

Every transition is ``UPDATE action_plans ... WHERE id = :id AND status = :expected`` (and,
where it matters, ``expires_at > now()`` on the database clock) in the same transaction as
its audit event. Two clicks, two approvers or two replicas race on that write: exactly one
wins, the others change nothing. A claimed plan is never run again: if the process that
claimed it dies, ``recover`` marks it ``unknown`` for a person to reconcile.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.actions import rules as plans
from bot.actions.perform import ActionResult, perform
from bot.actions.rules import PlanView
from bot.actions.select import TOUCHES, Action, Item, Selection
from bot.db.models import ActionPlan
from bot.errors import MailqbotError, PermissionDenied, PlanClosed, UsageError
from bot.inventory import Host
from bot.stores import audit
from bot.stores import plans as store

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bot.app.services import Services
    from bot.context import Context


def _audit(ctx: Context, event: str, plan: ActionPlan, **detail: Any) -> audit.AuditRecord:
    return audit.AuditRecord(
        source=ctx.request.source,
        actor=ctx.request.user_id,
        team_id=ctx.request.team_id,
        action=event,
        host=plan.host,
        request_id=ctx.request.request_id,
        detail={
            "plan": plan.id,
            "plan_hash": plan.plan_hash,
            "replica": ctx.services.replica,
            "channel_id": ctx.request.channel_id,
            "message_link": ctx.request.message_link,
            **detail,
        },
    )


async def create(
    ctx: Context,
    host: Host,
    action: Action,
    cls: str,
    selection: Selection,
    items: list[Item],
    preview: dict[str, Any],
) -> PlanView:
    """Store the plan and its ``plan.created`` event in one transaction."""
    rule = plans.rule_for(ctx.services.inventory.config, cls)
    request = ctx.request

    def build(now: datetime) -> ActionPlan:
        plan = ActionPlan(
            id="p" + secrets.token_hex(5), request_id=request.request_id, host=host.name,
            action=action, action_class=cls, selector=" ".join(selection.words()),
            items=[i.as_json() for i in items], item_count=len(items), preview=preview,
            requester=request.user_id, requester_team=request.team_id, reason=selection.reason,
            status="pending", approvals_needed=rule.approvals, approvals=0, created_at=now,
            expires_at=now + timedelta(seconds=rule.lifetime), channel_id=request.channel_id,
        )  # fmt: skip
        plan.plan_hash = plans.plan_hash(plan, ctx.services.audit)
        return plan

    def created(plan: ActionPlan) -> audit.AuditRecord:
        return _audit(ctx, "plan.created", plan, action=action, action_class=cls,
                      selector=plan.selector, reason=plan.reason, items=len(items),
                      first_ids=preview.get("first_ids", []),
                      expires_at=plan.expires_at.isoformat(),
                      approvals_needed=rule.approvals)  # fmt: skip

    plan = await store.create(ctx.services.sessions, build, created)
    return plans.view(plan, [])


async def load(ctx: Context, plan_id: str) -> PlanView:
    if not plans.PLAN_ID.fullmatch(plan_id):
        raise UsageError("That is not a plan id; plan ids look like `p3f9a0c12de`.")
    try:
        plan, decisions = await store.load(ctx.services.sessions, plan_id)
    except store.Missing:
        raise UsageError(
            f"There is no plan `{plan_id}`. Check the id in the approval message."
        ) from None
    return plans.view(plan, decisions)


def plan_id(word: str) -> str:
    """A plan id as approve/deny take it; a malformed one is refused before anything."""
    if not plans.PLAN_ID.fullmatch(word):
        raise UsageError("That is not a plan id; plan ids look like `p3f9a0c12de`.")
    return word


def _check_decider(ctx: Context, plan: PlanView, decision: str) -> None:
    """The same check as every command (team, guest, channel, the plan's host), then the
    plan's own rules: the requester may withdraw but never approve; anyone else must hold
    ``approve`` on the host here and be named by the action class's approvers."""
    who = ctx.identity
    if who.is_guest:
        raise PermissionDenied("Guest accounts may only read; ask a member of the team.")
    is_requester = who.user_id == plan.requester
    if decision == "deny" and is_requester:
        ctx.require("read", [plan.host], f"withdraw plan `{plan.id}` here")
        return
    if decision == "approve" and is_requester:
        raise PermissionDenied(
            f"You asked for plan `{plan.id}`; another person must approve it (two-person rule)."
        )
    ctx.require("approve", [plan.host], f"{decision} plans here")
    rule = plans.rule_for(ctx.services.inventory.config, plan.action_class)
    services = ctx.services
    if not plans.may_approve(who, rule, plan.host, services.inventory, services.allowed_teams):
        who_may = ", ".join(rule.approvers) or "nobody (the approver list is empty)"
        raise PermissionDenied(
            f"You may not {decision} `{plan.action_class}` plans on {plan.host}. Approvers: "
            f"{who_may}. Ask one of them, or a mailqbot admin for the role."
        )


async def decide(ctx: Context, plan_id: str, decision: str, note: str = "") -> PlanView:
    """Record ``decision`` ("approve"/"deny") by the caller: one conditional write."""
    current = await load(ctx, plan_id)
    _check_decider(ctx, current, decision)
    if current.status != "pending" or await expire_if_due(ctx, plan_id):
        raise PlanClosed(_closed_message(await load(ctx, plan_id)))

    def decided(plan: ActionPlan, status: str) -> audit.AuditRecord:
        name = {"approved": "plan.approved", "denied": "plan.denied"}.get(status)
        return _audit(ctx, name or "plan.approval_added", plan, decision=decision, note=note,
                      approvals=plan.approvals + (decision == "approve"),
                      approvals_needed=plan.approvals_needed)  # fmt: skip

    who = (ctx.request.user_id, ctx.request.team_id)
    try:
        status = await store.decide(ctx.services.sessions, plan_id, who, decision, decided)
    except store.AlreadyDecided:
        raise PlanClosed(f"You already decided on plan `{plan_id}`.") from None
    if status is None:
        await expire_if_due(ctx, plan_id)
        raise PlanClosed(_closed_message(await load(ctx, plan_id)))
    return await load(ctx, plan_id)


def _closed_message(plan: PlanView) -> str:
    return f"Plan `{plan.id}` is {plan.status_words}; nothing was changed by this click. " + (
        f"Ask again with `/mailq {plan.action} {plan.host} {plan.selector}` for a new plan."
        if plan.status in ("expired", "denied")
        else "See the plan's message for its state."
    )


async def expire_if_due(ctx: Context, plan_id: str) -> bool:
    """Mark an open plan past its expiry as expired (one conditional write + audit)."""
    return await store.expire(
        ctx.services.sessions, plan_id, lambda plan: _audit(ctx, "plan.expired", plan)
    )


async def claim(ctx: Context, plan_id: str) -> list[Item] | None:
    """approved -> executing for this replica, if still valid: one conditional write.
    Returns the plan's items, or None if someone else claimed it or it is no longer valid."""
    services = ctx.services

    def unchanged(plan: ActionPlan, created: dict[str, Any] | None) -> None:
        """The plan as stored is the plan that was approved: its keyed hash matches its
        content and the hash its ``plan.created`` audit event recorded."""
        recorded = (created or {}).get("plan_hash")
        if plans.plan_hash(plan, services.audit) != plan.plan_hash or recorded != plan.plan_hash:
            raise MailqbotError(
                f"Plan `{plan.id}` is not the plan that was approved (its hash does not match "
                "its content or its plan.created record): refusing to run it. Nothing was "
                "changed; check the audit trail (`mailqbot audit verify`) and ask for a new plan."
            )

    plan = await store.claim(services.sessions, plan_id, services.replica, unchanged,
                             lambda plan: _audit(ctx, "plan.claimed", plan))  # fmt: skip
    return None if plan is None else [Item.from_json(i) for i in plan.items]


async def run_approved(ctx: Context, host: Host, plan_id: str) -> PlanView:
    """Claim the plan and run it once; a plan someone else claimed is left alone."""
    items = await claim(ctx, plan_id)
    if items is None:
        await expire_if_due(ctx, plan_id)
        return await load(ctx, plan_id)
    return await _execute(ctx, host, plan_id, items)


async def _execute(ctx: Context, host: Host, plan_id: str, items: list[Item]) -> PlanView:
    """Run a plan this replica has claimed, and record how it ended."""
    action = _action(await load(ctx, plan_id))
    status, result = "unknown", ActionResult(host.name, action, len(items))
    try:
        result = await perform(ctx, host, action, items)
        status = "unknown" if result.outcome == "unknown" else "done"
    except MailqbotError as exc:  # listing again failed: nothing was changed
        status = "failed"
        result.unknown.clear()
        result.notes.append(exc.user_message)
    finally:
        await _finish(ctx, plan_id, status, result)
    return await load(ctx, plan_id)


def _action(plan: PlanView) -> Action:
    for action in TOUCHES:
        if action == plan.action:
            return action
    raise MailqbotError(f"Plan `{plan.id}` names an unknown action {plan.action!r}.")


async def _finish(ctx: Context, plan_id: str, status: str, result: ActionResult) -> None:
    def finished(plan: ActionPlan, recorded: bool) -> audit.AuditRecord:
        # Not recorded: the claim was presumed dead and the plan marked unknown meanwhile;
        # the audit trail still gets what this run did.
        event = f"plan.{status}" if recorded else f"plan.{status}_after_presumed_dead"
        return _audit(ctx, event, plan, result=result.as_json(), remote=ctx.remote_records())

    services = ctx.services
    await store.finish(services.sessions, plan_id, services.replica, status, result.as_json(),
                       finished)  # fmt: skip


EXECUTION_LEASE = 3600.0  # a claim older than this, still executing, is presumed dead


def replica_context(services: Services) -> Context:
    """The identity a replica acts under when no person clicked (recovery, resumption)."""
    from bot.context import Context, Identity, Request

    request = Request(source="replica", user_id=f"replica:{services.replica}"[:64], text="recover")
    return Context(services, request, Identity.of(request), permission="approve")


START_MARGIN = 5.0  # seconds: the local clock's start mark, set back for a database clock behind


async def start_mark(services: Services) -> datetime:
    """This process's start on the database's clock, the one claims are stamped with (to
    the second on SQLite: a claim in the same second is not older). Claims of this
    replica's name older than this are a dead predecessor's. If the database cannot answer,
    the local clock less ``START_MARGIN``: a claim it misses is settled once its lease
    (``EXECUTION_LEASE``) runs out."""
    try:
        return await store.now(services.sessions)
    except Exception as exc:
        log.warning("database time unavailable at start (%s); using the local clock", exc)
        return datetime.now(UTC) - timedelta(seconds=START_MARGIN)


async def recover(
    services: Services, *, started: datetime | None = None, lease: float = EXECUTION_LEASE
) -> list[PlanView]:
    """Settle plans a dead replica left behind; returns the plans this call ran.

    - ``executing`` plans whose claim is stale, or (given ``started``, the time this
      process started) claimed by this replica's name before then, become ``unknown``:
      never run again. Their process is gone: it is this one that restarted. A claim this
      process made since is a click it is running, whichever pass this is.
    - open plans past their expiry become ``expired``.
    - ``approved`` plans nobody claimed (the approver's replica died in between) run now,
      once: the claim is the same compare-and-set as after a click.
    """
    ctx = replica_context(services)
    sessions = services.sessions
    before_start = None if started is None else (services.replica, started)
    for plan_id in await store.stale(sessions, lease, before_start):
        await _mark_unknown(ctx, plan_id)
    for plan_id in await store.open_ids(sessions):
        await expire_if_due(ctx, plan_id)
    ran = []
    for plan_id in await store.approved_ids(sessions):
        items = await claim(ctx, plan_id)
        if items is not None:  # another replica may have claimed it first
            host = services.inventory.get((await load(ctx, plan_id)).host)
            ran.append(await _execute(ctx, host, plan_id, items))
    return ran


def _unknown_result(why: str) -> dict[str, Any]:
    result = ActionResult("", "purge", 0, unknown=[why]).as_json()
    result["asked"] = None  # not known: the replica died before it counted
    return result


async def _mark_unknown(ctx: Context, plan_id: str) -> None:
    why = "the replica that claimed it stopped before reporting; check the host's queue"

    def unknown(plan: ActionPlan) -> audit.AuditRecord:
        return _audit(ctx, "plan.unknown", plan, why=why, claimed_by=plan.claimed_by)

    await store.mark_unknown(ctx.services.sessions, plan_id, _unknown_result(why), unknown)
