"""Plan rules and views: which action class needs approval, who may approve, the plan hash.

Pure functions over the config and the stored row; the state changes are in
``bot/approvals.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot import auth
from bot.inventory import APPROVAL_ALWAYS, ActionRule, Config, Inventory
from bot.stores.audit_key import AuditTrail
from bot.text import table

if TYPE_CHECKING:
    from bot.actions.select import Selection
    from bot.context import Identity
    from bot.db.models import ActionPlan

PLAN_ID = re.compile(r"p[0-9a-f]{10}")
OPEN = ("pending", "approved")
STATUS_WORDS = {
    "pending": "waiting for approval",
    "approved": "approved, about to run",
    "executing": "running",
    "done": "done",
    "failed": "failed before changing anything",
    "unknown": "outcome unknown",
    "denied": "denied",
    "expired": "expired",
}


def action_class(
    config: Config, action: str, selection: Selection, count: int, in_queues: int
) -> tuple[str, str]:
    """The class of a plan, from what it will change, and why when it is ``purge_all``.

    A purge is ``purge_all`` (its own, higher-bar approver rule) when it covers a whole
    queue, whatever the wording: ``ALL deferred``; a filter that selects only by ``queue=``,
    ``older=`` or ``newer=``; more messages than ``actions.purge.max_messages``; or at least
    ``actions.purge.max_share`` of the ``in_queues`` messages listed in the queues it draws
    from."""
    if action != "purge":
        return action, ""
    rule = rule_for(config, "purge")
    if selection.everything:
        return "purge_all", "it deletes the whole deferred queue"
    if selection.filter.by_queue_and_age_only:
        return "purge_all", "it selects only by queue or age, which covers a whole queue"
    if rule.max_messages is not None and count > rule.max_messages:
        return "purge_all", (
            f"it deletes {count:,} messages, more than purge's limit of {rule.max_messages:,}"
        )
    share = count / in_queues if in_queues else 0.0
    if rule.max_share is not None and count and share >= rule.max_share:
        return "purge_all", (
            f"it deletes {share:.0%} of the {in_queues:,} messages in the queues it selects "
            f"from (purge's limit: under {rule.max_share:.0%})"
        )
    return "purge", ""


def rule_for(config: Config, cls: str) -> ActionRule:
    return next((rule for name, rule in config.actions.items() if name == cls), ActionRule())


def needs_approval(config: Config, cls: str) -> bool:
    return cls in APPROVAL_ALWAYS or rule_for(config, cls).approval


def may_approve(
    who: Identity, rule: ActionRule, host: str, inventory: Inventory, allowed_teams: Iterable[str]
) -> bool:
    """True if ``who`` is named by the rule's approvers (directly, by a user group, or by a
    role whose grant holds for them here and reaches ``host``). An empty approver list
    approves nobody, the console included."""
    if not rule.approvers:
        return False
    if who.is_local:
        return True
    members = {who.user_id} | who.groups
    for approver in rule.approvers:
        if approver.startswith("role:"):
            if auth.holds_role(who, approver.removeprefix("role:"), host, inventory,
                               allowed_teams):  # fmt: skip
                return True
        elif approver in members:
            return True
    return False


def _iso(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="seconds")


def plan_hash(plan: ActionPlan, trail: AuditTrail) -> str:
    """HMAC-SHA256, under the audit key, over everything an approver approves: host,
    action and class, the exact items, the preview the approver was shown, requester,
    reason, approvals needed and expiry. Without the key nobody can change a stored plan
    and give it a matching hash."""
    body = {
        "id": plan.id,
        "host": plan.host,
        "action": plan.action,
        "class": plan.action_class,
        "items": plan.items,
        "preview": plan.preview,
        "requester": plan.requester,
        "reason": plan.reason,
        "approvals_needed": plan.approvals_needed,
        "created_at": _iso(plan.created_at),
        "expires_at": _iso(plan.expires_at),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return trail.mac(canonical.encode())


def epoch(value: datetime) -> float:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


@dataclass(frozen=True)
class PlanView:
    """What the plan template shows."""

    id: str
    host: str
    action: str
    action_class: str
    selector: str
    count: int
    preview: dict[str, Any]
    plan_hash: str
    requester: str
    reason: str
    status: str
    approvals: int
    approvals_needed: int
    created_at: float
    expires_at: float
    decisions: tuple[tuple[str, str], ...]  # (actor, "approve" | "deny")
    result: dict[str, Any] | None

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    @property
    def short_hash(self) -> str:
        return self.plan_hash[:12]

    @property
    def approvers_done(self) -> list[str]:
        return [actor for actor, decision in self.decisions if decision == "approve"]

    @property
    def denied_by(self) -> str | None:
        return next((a for a, d in self.decisions if d == "deny"), None)

    @property
    def skipped(self) -> list[tuple[str, int]]:
        if not self.result:
            return []
        counts: dict[str, int] = {}
        for _id, why in self.result.get("skipped", []):
            counts[why] = counts.get(why, 0) + 1
        return sorted(counts.items(), key=lambda kv: -kv[1])


def view(plan: ActionPlan, decisions: list[tuple[str, str]]) -> PlanView:
    return PlanView(
        id=plan.id,
        host=plan.host,
        action=plan.action,
        action_class=plan.action_class,
        selector=plan.selector,
        count=plan.item_count,
        preview=dict(plan.preview),
        plan_hash=plan.plan_hash,
        requester=plan.requester,
        reason=plan.reason,
        status=plan.status,
        approvals=plan.approvals,
        approvals_needed=plan.approvals_needed,
        created_at=epoch(plan.created_at),
        expires_at=epoch(plan.expires_at),
        decisions=tuple(decisions),
        result=dict(plan.result) if plan.result else None,
    )


DONE_WORDS = {
    "purge": "Deleted",
    "hold": "Put on hold",
    "release": "Released",
    "requeue": "Requeued",
    "flush": "Asked Postfix to try",
}


def preview_table(preview: dict[str, Any]) -> str:
    """Counts by reason class and by recipient domain, as one aligned table."""
    rows: list[list[str]] = []
    for title, key in (("reason", "by_reason"), ("domain", "by_domain"), ("queue", "by_queue")):
        for i, (name, count) in enumerate(dict(preview.get(key, {})).items()):
            rows.append([title if i == 0 else "", str(name), f"{int(count):,}"])
    return table(rows, ["by", "", "messages"], (2,))
