"""Queue actions: which messages a request selects.

``select`` lists the queue once and returns the selected messages as ``Item``s (queue ID,
arrival time, sender, queue): the exact set a plan stores and a person approves, with a
preview of them. Changing them is ``bot.actions.perform``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import UsageError
from bot.inventory import Host
from bot.postfix.filter import QueueFilter, reason_class
from bot.postfix.models import QueueMessage, Recipient, is_queue_id
from bot.postfix.reader import stream_queue
from bot.text import code

if TYPE_CHECKING:
    from bot.context import Context

Action = Literal["flush", "requeue", "hold", "release", "purge"]
# The queues each action may touch (at selection and again at execution).
TOUCHES: dict[Action, tuple[str, ...]] = {
    "flush": ("deferred",),
    "requeue": ("deferred", "hold", "incoming", "active"),
    "hold": ("deferred", "incoming", "active"),
    "release": ("hold",),
    "purge": ("deferred", "hold", "incoming", "active"),
}
# Without queue= or IDs, a filter selects from these queues only.
DEFAULT_QUEUES: dict[Action, tuple[str, ...]] = {
    "flush": ("deferred",),
    "requeue": ("deferred",),
    "hold": ("deferred",),
    "release": ("hold",),
    "purge": ("deferred",),
}
PREVIEW_IDS = 10
REASON_MAX = 500


@dataclass(frozen=True)
class Selection:
    """What a request names: a filter (bare IDs become ``id=``), or the whole queue."""

    filter: QueueFilter
    everything: bool = False  # flush: `all`; purge: `ALL deferred`
    reason: str = ""

    def words(self) -> list[str]:
        if self.everything:
            return ["ALL", "deferred"]
        return self.filter.words()


def parse_selection(action: Action, words: Iterable[str], usage: str) -> Selection:
    """Split ``why=...`` off, turn bare queue IDs into ``id=``, parse the rest as a filter."""
    reason, rest = _take_reason(words, usage)
    if action == "purge" and rest[:1] == ["ALL"]:
        if rest != ["ALL", "deferred"]:
            raise UsageError("Write `ALL deferred` exactly, with nothing else.", usage)
        return Selection(QueueFilter(queues=("deferred",)), everything=True, reason=reason)
    if action == "flush" and rest in ([], ["all"]):
        return Selection(QueueFilter(), everything=True, reason=reason)
    if not rest:
        raise UsageError(f"Name queue IDs or a filter for `{action}`.", usage)
    filter_words = [f"id={w}" if is_queue_id(w) else w for w in rest]
    for word in filter_words:
        if "=" not in word:
            raise UsageError(
                f"`{code(word)[:60]}` is neither a queue ID nor a filter word like "
                "`domain=example.com`.",
                usage,
            )
    selection = Selection(QueueFilter.parse(filter_words), reason=reason)
    _check_queues(action, selection.filter, usage)
    return selection


def _take_reason(words: Iterable[str], usage: str) -> tuple[str, list[str]]:
    reason, rest = "", []
    for word in words:
        if word.lower().startswith("why="):
            reason = " ".join([reason, word[4:]]).strip()
        else:
            rest.append(word)
    if len(reason) > REASON_MAX:
        raise UsageError(f"Keep `why=` under {REASON_MAX} characters.", usage)
    return reason, rest


def _check_queues(action: Action, queue_filter: QueueFilter, usage: str) -> None:
    wrong = [q for q in queue_filter.queues if q not in TOUCHES[action]]
    if wrong:
        raise UsageError(
            f"`{action}` works on the {', '.join(TOUCHES[action])} queue(s), not {wrong[0]}.",
            usage,
        )


def queues_for(action: Action, queue_filter: QueueFilter) -> tuple[str, ...]:
    if queue_filter.queues:
        return queue_filter.queues
    return TOUCHES[action] if queue_filter.ids else DEFAULT_QUEUES[action]


@dataclass(frozen=True, slots=True)
class Item:
    """One selected message as it was when selected."""

    queue_id: str
    arrival_time: int
    sender: str
    queue: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.queue_id, "arrival_time": self.arrival_time,
                "sender": self.sender, "queue": self.queue}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(str(data["id"]), int(data["arrival_time"]), str(data["sender"]),
                   str(data["queue"]))  # fmt: skip


@dataclass
class Preview:
    """Counts a person needs to judge a selection, without reading every ID."""

    messages: int = 0
    recipients: int = 0  # recipients the filter matched
    other_recipients: int = 0  # recipients in the same messages the filter did not match
    bytes: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_domain: Counter[str] = field(default_factory=Counter)
    by_queue: Counter[str] = field(default_factory=Counter)
    oldest: int | None = None
    newest: int | None = None
    # Every message listed in the queues the selection draws from, selected or not: what a
    # plan's share of the queue is measured against.
    in_queues: int = 0

    def add(
        self, message: QueueMessage, matched: int, reasons: list[str], domains: set[str]
    ) -> None:
        self.messages += 1
        self.recipients += matched
        self.other_recipients += len(message.recipients) - matched
        self.bytes += message.message_size
        self.by_reason.update(set(reasons))
        self.by_domain.update(domains)
        self.by_queue[message.queue_name] += 1
        at = message.arrival_time
        self.oldest = at if self.oldest is None else min(self.oldest, at)
        self.newest = at if self.newest is None else max(self.newest, at)

    def as_json(self, items: list[Item]) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "recipients": self.recipients,
            "other_recipients": self.other_recipients,
            "bytes": self.bytes,
            "by_reason": dict(self.by_reason.most_common(8)),
            "by_domain": dict(self.by_domain.most_common(8)),
            "by_queue": dict(self.by_queue),
            "oldest": self.oldest,
            "newest": self.newest,
            "in_queues": self.in_queues,
            "first_ids": [i.queue_id for i in items[:PREVIEW_IDS]],
        }


@dataclass
class _Collector:
    action: Action
    selection: Selection
    now: float
    items: list[Item] = field(default_factory=list)
    preview: Preview = field(default_factory=Preview)

    def add(self, message: QueueMessage) -> None:
        queue_filter = self.selection.filter
        if message.queue_name not in queues_for(self.action, queue_filter):
            return
        self.preview.in_queues += 1
        selected = queue_filter.matching_recipients(message, self.now)
        if selected is None:
            return
        chosen = selected or list(message.recipients)
        reasons = [_reason_name(message, r) for r in chosen]
        domains = {r.address.rpartition("@")[2].lower() or "(local)" for r in chosen}
        self.items.append(
            Item(message.queue_id, message.arrival_time, message.sender, message.queue_name)
        )
        self.preview.add(message, len(selected), reasons, domains)


def _reason_name(message: QueueMessage, recipient: Recipient) -> str:
    found = reason_class(message, recipient)
    return found.label if found is not None else "no reason yet"


async def select(
    ctx: Context, host: Host, action: Action, selection: Selection
) -> tuple[list[Item], dict[str, Any]]:
    """List ``host``'s queue and return the selected messages and their preview."""
    collector = _Collector(action, selection, ctx.services.clock())
    await stream_queue(ctx.remote, host, collector.now, collector.add)
    return collector.items, collector.preview.as_json(collector.items)
