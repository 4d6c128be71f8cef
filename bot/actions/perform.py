"""Changing exactly the planned messages, and what Postfix said about it.

``perform`` lists the queue again (unless the items were listed by this same request) and
checks each planned ID as the listing streams in: only an ID that still names the same
message (same arrival time and sender: Postfix reuses IDs) in a queue the action may touch
is confirmed. Confirmed IDs go to ``postsuper`` on standard input in batches of ``BATCH``,
each started as soon as it is full, up to ``MAX_PARALLEL`` side by side, so the deletion
overlaps the listing instead of waiting for its end. What Postfix reports is compared with
what was asked. Nothing here retries a change: one whose outcome cannot be known (timeout,
lost connection, unreadable report) says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.actions.select import TOUCHES, Action, Item
from bot.errors import AuditUnavailable, MailqbotError, ParseError, UsageError
from bot.inventory import Host
from bot.postfix import postsuper, tools
from bot.postfix.models import QueueMessage
from bot.postfix.reader import shorten, stream_queue
from bot.remote.audited import Remote

if TYPE_CHECKING:
    from bot.context import Context

MAX_FLUSH_IDS = 200  # postqueue -i is one session per message
# One postsuper run spends most of its time waiting on the file system, one message after
# another: eight runs side by side on disjoint IDs delete faster than `postsuper -d ALL`.
MAX_PARALLEL = 8
BATCH = 2_000  # IDs per postsuper run; a run starts as soon as its batch is full

ChangeOutcome = Literal["done", "partial", "unknown", "nothing", "refused"]


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
    # why changes were not run (their intent could not be recorded): nothing changed there
    refused: list[str] = field(default_factory=list)
    flushed_all: bool = False

    @property
    def outcome(self) -> ChangeOutcome:
        if self.unknown:
            return "unknown"
        if self.flushed_all:
            return "done"
        if self.changed == 0:
            return "refused" if self.refused else "nothing"
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
            "refused": self.refused[:1],
        }


def check(action: Action, item: Item, now: Item) -> str | None:
    """Why the planned ``item``, listed now as ``now``, must be left alone; None: change it."""
    if (now.arrival_time, now.sender) != (item.arrival_time, item.sender):
        return "the ID now names a different message"
    if now.queue not in TOUCHES[action]:
        return f"now in the {now.queue} queue"
    return None


@dataclass
class Recheck:
    """The plan checked against the listing as it streams in, one message at a time.

    ``add`` takes each listed message; a planned one that still matches is confirmed once
    (and handed to ``confirm`` with its queue now), later sightings of it are ignored. A
    mismatch is only a doubt: the message may show again, moved on, in a queue the action
    may touch (a listing can see a message twice while it moves between queues)."""

    action: Action
    planned: dict[str, Item]
    confirm: Callable[[str, str], None]  # (queue now, queue ID)
    confirmed: set[str] = field(default_factory=set)
    doubts: dict[str, str] = field(default_factory=dict)

    def add(self, message: QueueMessage) -> None:
        queue_id = message.queue_id
        item = self.planned.get(queue_id)
        if item is None or queue_id in self.confirmed:
            return
        now = Item(queue_id, message.arrival_time, message.sender, message.queue_name)
        why = check(self.action, item, now)
        if why is not None:
            self.doubts[queue_id] = why
            return
        self.doubts.pop(queue_id, None)
        self.confirmed.add(queue_id)
        self.confirm(message.queue_name, queue_id)

    def skipped(self, items: list[Item], unseen: str = "no longer in the queue") -> list[
        tuple[str, str]
    ]:  # fmt: skip
        """Every planned ID not confirmed, in plan order, with why."""
        return [(item.queue_id, self.doubts.get(item.queue_id, unseen))
                for item in items if item.queue_id not in self.confirmed]  # fmt: skip


@dataclass
class _Runs:
    """``postsuper`` runs of one action: a batch per queue, started when it is full (or at
    ``finish``), at most ``lanes`` at once, each in its own task of ``group``."""

    ctx: Context
    host: Host
    action: Action
    result: ActionResult
    group: asyncio.TaskGroup
    lanes: asyncio.Semaphore
    pending: dict[str, list[str]] = field(default_factory=dict)
    started: int = 0  # IDs handed to a run

    def add(self, queue: str, queue_id: str) -> None:
        batch = self.pending.setdefault(queue, [])
        batch.append(queue_id)
        if len(batch) >= BATCH:
            self._start(queue, self.pending.pop(queue))

    def finish(self) -> None:
        for queue, ids in self.pending.items():
            self._start(queue, ids)
        self.pending.clear()

    def drop_pending(self) -> set[str]:
        """Forget the batches not yet started; their IDs."""
        dropped = {i for ids in self.pending.values() for i in ids}
        self.pending.clear()
        return dropped

    def _start(self, queue: str, ids: list[str]) -> None:
        self.started += len(ids)
        self.group.create_task(self._run(queue, ids))

    async def _run(self, queue: str, ids: list[str]) -> None:
        async with self.lanes:
            await _change(self.ctx.remote, self.host, self.action, queue, ids, self.result)
        done, asked = self.result.changed, self.result.asked
        await self.ctx.progress(f"{self.host.name}: {self.action} {done:,} of {asked:,} done…")


async def perform(
    ctx: Context, host: Host, action: Action, items: list[Item], *, fresh: bool = False
) -> ActionResult:
    """Change ``items`` on ``host``. ``fresh`` items were listed by this same request;
    otherwise (a plan) the queue is listed again and only still-matching IDs are touched."""
    result = ActionResult(host.name, action, len(items))
    if action == "flush":
        ids: list[str] = []
        if fresh:
            ids = [item.queue_id for item in items]
        else:
            recheck = await _relist(ctx, host, action, items, lambda _q, i: ids.append(i))
            result.skipped.extend(recheck.skipped(items))
        await _flush_each(ctx, host, ids, result)
        if result.refused and not result.changed:
            raise AuditUnavailable(result.refused[0])  # nothing was tried
        return result
    # While the queue is listed again, the listing holds one of the host's sessions.
    lanes = asyncio.Semaphore(max(1, min(MAX_PARALLEL, host.max_sessions - (not fresh))))
    broke: MailqbotError | None = None
    async with asyncio.TaskGroup() as group:
        runs = _Runs(ctx, host, action, result, group, lanes)
        if fresh:
            for item in items:
                runs.add(item.queue, item.queue_id)
        else:
            recheck = Recheck(action, {i.queue_id: i for i in items}, runs.add)
            try:
                await _stream(ctx, host, recheck)
            except MailqbotError as exc:  # what was confirmed and started still runs
                broke = exc
                recheck.confirmed -= runs.drop_pending()
                unseen = "left alone: the queue listing broke off first"
                result.skipped.extend(recheck.skipped(items, unseen))
                result.notes.append(
                    f"The queue listing broke off ({shorten(exc.user_message, 200)}): only "
                    f"the {runs.started:,} IDs confirmed and sent before that were acted on."
                )
            else:
                result.skipped.extend(recheck.skipped(items))
        if broke is None:
            runs.finish()
    if broke is not None and runs.started == 0:
        raise broke  # nothing was changed
    if result.refused and not result.changed and not result.unknown:
        raise AuditUnavailable(result.refused[0])  # nothing was changed
    return result


async def _relist(
    ctx: Context, host: Host, action: Action, items: list[Item], confirm: Callable[[str, str], None]
) -> Recheck:
    recheck = Recheck(action, {i.queue_id: i for i in items}, confirm)
    await _stream(ctx, host, recheck)
    return recheck


async def _stream(ctx: Context, host: Host, recheck: Recheck) -> None:
    await stream_queue(ctx.remote, host, ctx.services.clock(), recheck.add)


async def _change(
    remote: Remote, host: Host, action: Action, queue: str, ids: list[str], result: ActionResult
) -> None:
    assert action != "flush"
    command = tools.change(action, queue, sudo=host.sudo)
    try:
        ran = await remote.run(host, command, stdin=tools.ids_input(ids))
    except AuditUnavailable as exc:  # not run: nothing changed
        result.refused.append(exc.user_message)
        result.skipped.extend((i, "not changed: the audit trail could not be written") for i in ids)
        return
    except MailqbotError as exc:
        result.unknown.append(exc.user_message)
        return
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
    await ctx.remote.run(host, tools.flush_all())
    return result


async def _flush_each(ctx: Context, host: Host, ids: list[str], result: ActionResult) -> None:
    if len(ids) > MAX_FLUSH_IDS:
        raise UsageError(
            f"{len(ids):,} messages selected; `flush` by ID tries at most {MAX_FLUSH_IDS:,}. "
            f"Flush the whole queue with `/mailq flush {host.name} all`, or narrow the filter."
        )

    async def one(queue_id: str) -> None:
        try:
            await ctx.remote.run(host, tools.deliver(queue_id))
        except AuditUnavailable as exc:
            result.refused.append(exc.user_message)
            result.skipped.append((queue_id, "not tried: the audit trail could not be written"))
            return
        except MailqbotError as exc:
            result.skipped.append((queue_id, exc.user_message[:200]))
            return
        result.changed += 1

    await asyncio.gather(*(one(i) for i in ids))
