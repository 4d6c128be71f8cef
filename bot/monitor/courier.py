"""Every Slack write the monitor makes, under a per-channel budget.

A post (a root, a thread note, a file in a thread) takes a token from its channel's bucket
(``burst`` tokens, refilled at ``per_minute``) and is sent at least ``gap`` seconds after
the channel's last post (Slack asks for at most one message per second per channel). With
``shared`` (the herald passes ``bot.stores.budget``), that bucket and that gap are the
channel's in the database, shared by every replica, and so is the channel's edit rate
(``edits_per_minute``, bursts of ``EDIT_BURST``); this process's own buckets are used only
when the database cannot answer. A root and a resolve notice always go out: they wait for
their token. A note or file that finds no token is not dropped: it is *folded*, i.e. its
root is edited (with the latest numbers and a count of the updates folded into it) and
``Counters.folded`` goes up. Edits of one message are coalesced: one waits ``edit_gap``
after the last edit of that message and shows the state read when it is sent, so twenty
changes make one edit.

The counters are plain in-process integers (``Counters``), for the metrics exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from bot.monitor.config import Budget

log = logging.getLogger(__name__)

EDIT_BURST = 10  # root edits a channel may get at once before edits_per_minute paces them


class View(Protocol):
    """What the courier needs of an alert (``Alert`` or ``GroupAlert``)."""

    @property
    def id(self) -> int: ...
    @property
    def channel_id(self) -> str | None: ...
    @property
    def root_ts(self) -> str | None: ...


class Sender(Protocol):
    """The Slack side (``bot.slack.alerts.SlackNotifier``)."""

    async def post_root(self, alert: Any) -> tuple[str, str] | None: ...
    async def edit_root(self, alert: Any) -> None: ...
    async def post_thread(self, alert: Any) -> None: ...
    async def post_file(self, alert: Any, filename: str, title: str, content: bytes) -> None: ...


Refresh = Callable[[], Awaitable[Any]]
# The budgets every replica shares (``bot.stores.budget.reserve`` bound to the database):
# (channel, kind, wait) -> seconds until the post ("post") or root edit ("edit") may go out,
# or None for "no token now" (only without ``wait``).
Kind = Literal["post", "edit"]
SharedBudget = Callable[[str, Kind, bool], Awaitable[float | None]]


@dataclass
class Counters:
    """What the courier did, since the process started (exported as metrics)."""

    posted: int = 0  # roots, notes and files sent
    folded: int = 0  # notes and files over the budget, folded into an edit of their root
    edits: int = 0  # chat.update calls made
    edits_coalesced: int = 0  # edits asked for that a later one carried
    failed: int = 0  # Slack calls that raised (logged)


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self._fill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is there."""
        self._fill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second

    def _fill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now


@dataclass
class _Channel:
    bucket: TokenBucket
    edits: TokenBucket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    edit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_post: float = float("-inf")


@dataclass
class _Edit:
    refresh: Refresh
    task: asyncio.Task[None] | None = None
    last: float = float("-inf")
    asked: int = 0


class Courier:
    def __init__(
        self,
        sender: Sender,
        budget: Budget,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedBudget | None = None,
    ) -> None:
        self.sender = sender
        self.budget = budget
        self.clock = clock
        self.shared = shared
        self.counters = Counters()
        self.channels: dict[str, _Channel] = {}
        self.edits: dict[tuple[str, str], _Edit] = {}
        self.folded: dict[int, int] = {}  # incident id -> updates folded into its root

    def _channel(self, channel: str) -> _Channel:
        found = self.channels.get(channel)
        if found is None:
            b = self.budget
            now = self.clock()
            bucket = TokenBucket(b.burst, b.per_minute / 60, b.burst, now)
            edits = TokenBucket(EDIT_BURST, b.edits_per_minute / 60, EDIT_BURST, now)
            found = self.channels[channel] = _Channel(bucket, edits)
        return found

    async def _paced(self, channel: str, post: Callable[[], Awaitable[Any]], wait: bool) -> Any:
        """Send ``post`` under the channel's budget; without ``wait`` give up (False) when
        no token is there now."""
        state = self._channel(channel)
        async with state.lock:
            if not await self._slot(channel, state, wait):
                return False
            try:
                return await post()
            finally:
                state.last_post = self.clock()
                self.counters.posted += 1

    async def _slot(self, channel: str, state: _Channel, wait: bool) -> bool:
        """Wait for this post's turn in the channel: under the budget every replica shares
        when there is one, else (or when the database cannot say) this process's own."""
        shared = await self._shared_turn(channel, "post", wait)
        if shared is not None:
            return shared
        if wait:
            await asyncio.sleep(state.bucket.wait(self.clock()))
        if not state.bucket.take(self.clock()):
            return False
        await asyncio.sleep(max(0.0, state.last_post + self.budget.gap - self.clock()))
        return True

    async def root(self, channel: str, alert: Any) -> tuple[str, str] | None:
        """Post a root message; it waits for its token rather than be folded."""
        ref: tuple[str, str] | None = await self._paced(
            channel, lambda: self.sender.post_root(alert), wait=True
        )
        return ref or None

    async def note(self, alert: View, refresh: Refresh, wait: bool = False) -> bool:
        """Post a note in the alert's thread, or fold it into an edit of the root (with
        ``wait``, as for a resolve: wait for a token instead)."""
        if not alert.channel_id or not alert.root_ts:
            return False

        async def send() -> bool:
            await self.sender.post_thread(alert)
            return True

        if await self._paced(alert.channel_id, send, wait=wait):
            return True
        self._fold(alert, refresh)
        return False

    async def file(
        self, alert: View, filename: str, title: str, content: bytes, refresh: Refresh
    ) -> bool:
        if not alert.channel_id or not alert.root_ts:
            return False

        async def send() -> bool:
            await self.sender.post_file(alert, filename, title, content)
            return True

        if await self._paced(alert.channel_id, send, wait=False):
            return True
        self._fold(alert, refresh)
        return False

    def _fold(self, alert: View, refresh: Refresh) -> None:
        self.counters.folded += 1
        self.folded[alert.id] = self.folded.get(alert.id, 0) + 1
        log.info("alert %s: channel budget spent, update folded into the root", alert.id)
        self.edit(alert, refresh)

    def with_folded(self, alert: Any) -> Any:
        """``alert`` with the count of updates folded into its root (if it has that field)."""
        count = self.folded.get(alert.id, 0)
        return replace(alert, folded=count) if count and hasattr(alert, "folded") else alert

    def edit(self, alert: View, refresh: Refresh) -> None:
        """Edit the alert's root soon, showing what ``refresh`` reads when the edit is sent."""
        if not alert.channel_id or not alert.root_ts:
            return
        key = (alert.channel_id, alert.root_ts)
        pending = self.edits.get(key)
        if pending is None:
            pending = self.edits[key] = _Edit(refresh)
        pending.refresh = refresh
        pending.asked += 1
        if pending.task is None or pending.task.done():
            pending.task = asyncio.create_task(self._edit(key, pending))
        else:
            self.counters.edits_coalesced += 1

    async def _edit(self, key: tuple[str, str], pending: _Edit) -> None:
        await asyncio.sleep(max(0.0, pending.last + self.budget.edit_gap - self.clock()))
        state = self._channel(key[0])
        async with state.edit_lock:  # the channel's edit rate
            await self._edit_slot(key[0], state)
        pending.asked = 0
        try:
            alert = await pending.refresh()
            if alert is not None:
                await self.sender.edit_root(self.with_folded(alert))
                self.counters.edits += 1
        except Exception:
            self.counters.failed += 1
            log.exception("could not edit alert root %s", key)
        finally:
            pending.last = self.clock()
        if pending.asked:  # asked again while this one was being sent
            pending.task = asyncio.create_task(self._edit(key, pending))

    async def _edit_slot(self, channel: str, state: _Channel) -> None:
        """Wait for an edit's turn: the channel's edit rate every replica shares, else (or
        when the database cannot say) this process's own."""
        if await self._shared_turn(channel, "edit", True) is not None:
            return
        await asyncio.sleep(state.edits.wait(self.clock()))
        state.edits.take(self.clock())

    async def _shared_turn(self, channel: str, kind: Kind, wait: bool) -> bool | None:
        """Wait for the turn the shared budget gives (True), or learn there is no token now
        (False); None when there is no shared budget or the database cannot answer."""
        if self.shared is None:
            return None
        asked = self.clock()
        try:
            delay = await self.shared(channel, kind, wait)
        except Exception as exc:
            log.warning("shared %s budget of %s unavailable (%s): using this process's own",
                        kind, channel, exc)  # fmt: skip
            return None
        if delay is None:
            return False
        # The delay counts from when it was asked: the database's answer took time.
        await asyncio.sleep(max(0.0, asked + delay - self.clock()))
        return True

    async def drain(self) -> None:
        """Wait for the edits asked for so far (a clean stop)."""
        while tasks := [e.task for e in self.edits.values() if e.task and not e.task.done()]:
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
