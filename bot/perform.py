"""Changing exactly the planned messages, and what Postfix said about it.

``perform`` lists the queue again (unless the items were listed by this same request), acts
only on items whose ID still names the same message (same arrival time and sender: Postfix
reuses IDs) in a queue the action may touch, feeds their IDs to ``postsuper`` on standard
input, and compares what Postfix reports with what was asked. Nothing here retries a change:
one whose outcome cannot be known (timeout, lost connection, unreadable report) says so.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.actions import TOUCHES, Action, Item
from bot.errors import MailqbotError, ParseError, UsageError
from bot.inventory import Host
from bot.mta import postsuper
from bot.mta.models import QueueMessage
from bot.queue import remote_record, stream_queue
from bot.ssh import SSHExecutor

if TYPE_CHECKING:
    from bot.pipeline import Context

MAX_FLUSH_IDS = 200  # postqueue -i is one session per message
MAX_PARALLEL = 4  # postsuper runs side by side on disjoint IDs
MIN_BATCH = 2_000  # fewer IDs than this per run: not worth another session

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
        batches = batched(ids, _parallel(host, len(ids)))
        await asyncio.gather(
            *(_change(ctx.services.executor, host, action, queue, batch, result, ctx.remote)
              for batch in batches)
        )  # fmt: skip
    return result


def _parallel(host: Host, count: int) -> int:
    """How many ``postsuper`` runs share ``count`` IDs. One run spends most of its time
    waiting on the file system per message; disjoint batches side by side finish about as
    fast as ``postsuper -d ALL``. Small sets stay one run (one report to read)."""
    return max(1, min(MAX_PARALLEL, host.max_sessions, count // MIN_BATCH))


def batched(ids: list[str], parts: int) -> list[list[str]]:
    """``ids`` cut into ``parts`` disjoint runs of consecutive IDs, together all of them."""
    size = -(-len(ids) // parts)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


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
