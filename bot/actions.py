"""Queue actions: which messages a request selects, and changing exactly those.

``select`` lists the queue once and returns the selected messages as ``Item``s (queue ID,
arrival time, sender, queue): the exact set a plan stores and a person approves.
``perform`` lists the queue again, acts only on items whose ID still names the same
message (same arrival time and sender: Postfix reuses IDs) in a queue the action may touch,
feeds their IDs to ``postsuper`` on standard input, and compares what Postfix reports with
what was asked. Nothing here retries a change: a change whose outcome cannot be known
(timeout, lost connection, unreadable report) says so.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import MailqbotError, ParseError, UsageError
from bot.inventory import Host
from bot.mta import postsuper
from bot.mta.filter import QueueFilter, reason_class
from bot.mta.models import QueueMessage, Recipient, is_queue_id
from bot.queue import remote_record
from bot.ssh import SSHExecutor
from bot.text import code
from commands.list import stream_queue

if TYPE_CHECKING:
    from bot.pipeline import Context

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
MAX_FLUSH_IDS = 200  # postqueue -i is one session per message
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
    await stream_queue(
        ctx.services.executor, host, collector.now, collector.add, ctx.progress, ctx.remote
    )
    return collector.items, collector.preview.as_json(collector.items)


# -- performing ---------------------------------------------------------------------------


Outcome = Literal["done", "partial", "unknown", "nothing"]


@dataclass
class ActionResult:
    """What happened: what was asked, changed, skipped (and why), and Postfix's own count."""

    host: str
    action: Action
    asked: int
    changed: int = 0
    postfix_count: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (queue ID, why)
    notes: list[str] = field(default_factory=list)  # postsuper lines not understood
    unknown: list[str] = field(default_factory=list)  # why the outcome is unknown
    flushed_all: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.unknown:
            return "unknown"
        if self.flushed_all:
            return "done"
        if self.changed == 0:
            return "nothing"
        return "done" if self.changed == self.asked else "partial"

    def skipped_by_reason(self) -> list[tuple[str, int]]:
        return Counter(why for _id, why in self.skipped).most_common()

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "asked": self.asked,
            "changed": self.changed,
            "postfix_count": self.postfix_count,
            "skipped": self.skipped[:1000],
            "skipped_total": len(self.skipped),
            "notes": self.notes[:50],
            "unknown": self.unknown,
        }


@dataclass
class _Current:
    """The plan's IDs as the queue shows them now (only those: memory follows the plan)."""

    wanted: set[str]
    seen: dict[str, Item] = field(default_factory=dict)

    def add(self, message: QueueMessage) -> None:
        if message.queue_id in self.wanted:
            self.seen[message.queue_id] = Item(
                message.queue_id, message.arrival_time, message.sender, message.queue_name
            )


def recheck(action: Action, items: list[Item], current: dict[str, Item]) -> tuple[
    dict[str, list[str]], list[tuple[str, str]]
]:  # fmt: skip
    """Split the plan into IDs to change (grouped by their queue now) and skipped ones."""
    todo: dict[str, list[str]] = {}
    skipped: list[tuple[str, str]] = []
    for item in items:
        now = current.get(item.queue_id)
        if now is None:
            skipped.append((item.queue_id, "no longer in the queue"))
        elif (now.arrival_time, now.sender) != (item.arrival_time, item.sender):
            skipped.append((item.queue_id, "the ID now names a different message"))
        elif now.queue not in TOUCHES[action]:
            skipped.append((item.queue_id, f"now in the {now.queue} queue"))
        else:
            todo.setdefault(now.queue, []).append(item.queue_id)
    return todo, skipped


async def perform(
    ctx: Context, host: Host, action: Action, items: list[Item], *, fresh: bool = False
) -> ActionResult:
    """Change ``items`` on ``host``. ``fresh`` items were listed by this same request;
    otherwise (a plan) the queue is listed again and only still-matching IDs are touched."""
    result = ActionResult(host.name, action, len(items))
    if fresh:
        todo: dict[str, list[str]] = {}
        for item in items:
            todo.setdefault(item.queue, []).append(item.queue_id)
    else:
        current = _Current({i.queue_id for i in items})
        await stream_queue(
            ctx.services.executor, host, ctx.services.clock(), current.add, ctx.progress, ctx.remote
        )
        todo, result.skipped = recheck(action, items, current.seen)
    if action == "flush":
        await _flush_each(ctx, host, todo, result)
        return result
    for queue, ids in todo.items():
        await ctx.progress(f"{host.name}: {action} {len(ids):,} messages in {queue}…")
        await _change(ctx.services.executor, host, action, queue, ids, result, ctx.remote)
    return result


async def _change(
    executor: SSHExecutor,
    host: Host,
    action: Action,
    queue: str,
    ids: list[str],
    result: ActionResult,
    remote: list[dict[str, Any]],
) -> None:
    assert action != "flush"
    command = postsuper.change(action, queue)
    try:
        ran = await executor.run(host, command, stdin=postsuper.ids_input(ids))
    except MailqbotError as exc:
        result.unknown.append(exc.user_message)
        return
    # postsuper reports on stderr: that is the output whose hash the audit trail keeps.
    remote.append(remote_record(ran, hashlib.sha256(ran.stderr.encode()).hexdigest()))
    try:
        report = postsuper.parse_report(action, ran.stderr)
    except ParseError as exc:
        result.unknown.append(f"{exc.user_message} Check the host before retrying.")
        return
    done = set(report.changed)
    result.changed += len(done & set(ids))
    result.postfix_count += report.count
    result.notes.extend(report.other)
    result.skipped.extend((i, "Postfix did not change it (moved or gone meanwhile)")
                          for i in ids if i not in done)  # fmt: skip
    if report.count != len(done):
        result.notes.append(
            f"postsuper counted {report.count:,} but named {len(done):,} messages in {queue}."
        )


async def flush_all(ctx: Context, host: Host) -> ActionResult:
    result = ActionResult(host.name, "flush", 0, flushed_all=True)
    ran = await ctx.services.executor.run(host, postsuper.flush_all())
    ctx.remote.append(remote_record(ran))
    return result


async def _flush_each(
    ctx: Context, host: Host, todo: dict[str, list[str]], result: ActionResult
) -> None:
    ids = [i for batch in todo.values() for i in batch]
    if len(ids) > MAX_FLUSH_IDS:
        raise UsageError(
            f"{len(ids):,} messages selected; `flush` by ID tries at most {MAX_FLUSH_IDS:,}. "
            f"Flush the whole queue with `/mailq flush {host.name} all`, or narrow the filter."
        )

    async def one(queue_id: str) -> None:
        try:
            ran = await ctx.services.executor.run(host, postsuper.deliver(queue_id))
        except MailqbotError as exc:
            result.skipped.append((queue_id, exc.user_message[:200]))
            return
        ctx.remote.append(remote_record(ran))
        result.changed += 1

    await asyncio.gather(*(one(i) for i in ids))
