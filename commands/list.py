"""``/mailq list HOST [filter words] [limit=N] [offset=N]``: matching messages, a page at a time.

The whole listing is streamed and every match is counted, but only the rows of the page
asked for are kept, so memory depends on ``limit``, not on the queue. Pages follow the
order of Postfix's own listing; the Next button lists the queue again from scratch, so a
page can shift if the queue changed in between. The filter words are ``bot.postfix.filter``'s;
``limit=`` and ``offset=`` belong to this command.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import UsageError
from bot.postfix.filter import QueueFilter, reason_class
from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.reader import stream_queue
from bot.text import clean, code, escape_mrkdwn, size, table, truncate, utc
from bot.text import duration as age_text

if TYPE_CHECKING:
    from bot.context import Context

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_OFFSET = 10_000_000
PROGRESS_EVERY = 5_000
CELL = 40  # widest sender or recipient shown in Slack's table
SECTION_LIMIT = 3000
BUTTON_VALUE_LIMIT = 2000
_PAGING_KEYS = {"limit": (1, MAX_LIMIT), "offset": (0, MAX_OFFSET)}


@dataclass(frozen=True)
class Paging:
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def words(self, offset: int) -> list[str]:
        limit = [] if self.limit == DEFAULT_LIMIT else [f"limit={self.limit}"]
        return [*limit, *([f"offset={offset}"] if offset else [])]


def take_paging(words: Iterable[str]) -> tuple[Paging, list[str]]:
    """Split ``limit=``/``offset=`` off the words; the rest are filter words."""
    found: dict[str, int] = {}
    rest = []
    for word in words:
        key, _eq, value = word.partition("=")
        key = key.strip().lower()
        if key not in _PAGING_KEYS or not _eq:
            rest.append(word)
            continue
        low, high = _PAGING_KEYS[key]
        if key in found or not value.isdigit() or not low <= int(value) <= high:
            raise UsageError(
                f"`{code(word)[:80]}`: give `{key}=` once, as a whole number from {low:,} to "
                f"{high:,}. Example: `/mailq list mx1 reason=greylisted limit=50`.",
                SPEC.usage,
            )
        found[key] = int(value)
    return Paging(**found), rest


@dataclass(frozen=True, slots=True)
class ListRow:
    queue_id: str
    queue_name: str
    arrival_time: int
    size: int
    sender: str
    recipient: str  # the first recipient that matched the filter
    recipients: int  # all recipients of the message
    reason: str  # the reason class of ``recipient`` ("" if it has none)


@dataclass
class PageBuilder:
    """Count every match; keep the rows from ``offset`` to ``offset + limit`` only."""

    filter: QueueFilter
    now: float
    paging: Paging
    scanned: int = 0
    matched: int = 0
    recipients: int = 0
    bytes: int = 0
    rows: list[ListRow] = field(default_factory=list)

    def add(self, message: QueueMessage) -> None:
        self.scanned += 1
        selected = self.filter.matching_recipients(message, self.now)
        if selected is None:
            return
        if self.paging.offset <= self.matched < self.paging.offset + self.paging.limit:
            self.rows.append(_row(message, selected[0] if selected else None))
        self.matched += 1
        self.recipients += len(selected)
        self.bytes += message.message_size


def _row(message: QueueMessage, first: Recipient | None) -> ListRow:
    cls = reason_class(message, first) if first is not None else None
    return ListRow(
        queue_id=message.queue_id,
        queue_name=message.queue_name,
        arrival_time=message.arrival_time,
        size=message.message_size,
        sender=message.sender or "<>",
        recipient=first.address if first is not None else "",
        recipients=len(message.recipients),
        reason=cls.value if cls is not None else "",
    )


@dataclass(frozen=True)
class ListPage:
    host: str
    now: float
    filter: QueueFilter
    paging: Paging
    scanned: int
    matched: int
    recipients: int
    bytes: int
    rows: list[ListRow]

    @property
    def first(self) -> int:
        return self.paging.offset + 1

    @property
    def last(self) -> int:
        return self.paging.offset + len(self.rows)

    @property
    def next_offset(self) -> int | None:
        end = self.paging.offset + self.paging.limit
        return end if end < self.matched else None

    def command(self, offset: int) -> str:
        """The command text that lists the page starting at ``offset`` (a button's value)."""
        words = ["list", self.host, *self.filter.words(), *self.paging.words(offset)]
        return shlex.join(words)

    @property
    def next_last(self) -> int:
        """The number of the last message on the next page."""
        return min(self.paging.offset + 2 * self.paging.limit, self.matched)

    @property
    def description(self) -> str:
        """The filter for people, cut short enough for a section even after escaping."""
        text = self.filter.describe()
        return text if len(text) <= 600 else text[:599] + "…"

    @property
    def next_command(self) -> str | None:
        offset = self.next_offset
        return None if offset is None else self.command(offset)

    @property
    def buttons_work(self) -> bool:
        """A button's value is escaped like all template text and unescaped by the Slack front
        end on the click; it must survive cleaning and fit Slack's limit once escaped."""
        value = self.command(self.next_offset or self.paging.offset)
        return clean(value) == value and len(escape_mrkdwn(value)) <= BUTTON_VALUE_LIMIT

    @property
    def arrivals(self) -> tuple[int, int] | None:
        """The oldest and newest arrival on this page."""
        times = [r.arrival_time for r in self.rows]
        return (min(times), max(times)) if times else None

    def _cells(self, row: ListRow, width: int | None) -> list[str]:
        def cut(text: str) -> str:
            return truncate(clean(text), width) if width else clean(text)

        extra = f"+{row.recipients - 1}" if row.recipients > 1 else ""
        age = age_text(self.now - row.arrival_time)
        return [row.queue_id, row.queue_name, age, size(row.size), cut(row.sender),
                cut(row.recipient), extra, row.reason]  # fmt: skip

    def slack_tables(self) -> list[str]:
        """The page as aligned tables, each short enough for one section once escaped."""
        headers = ["queue id", "queue", "age", "size", "sender", "recipient", "", "reason"]
        lines = table([self._cells(r, CELL) for r in self.rows], headers, (2, 3)).split("\n")
        return _chunks(lines[0], lines[1:], SECTION_LIMIT - len("``````"))

    def text_table(self) -> str:
        headers = ["queue id", "queue", "arrived", "age", "size", "sender", "recipient", ""]
        rows = []
        for row in self.rows:
            cells = self._cells(row, None)
            rows.append([*cells[:2], utc(row.arrival_time), *cells[2:]])
        return table(rows, [*headers, "reason"], (3, 4))


def _chunks(header: str, lines: list[str], limit: int) -> list[str]:
    """Group ``lines`` under a repeated ``header``; each group's escaped text fits ``limit``."""

    def cost(line: str) -> int:
        return len(escape_mrkdwn(code(line))) + 1

    chunks: list[str] = []
    current: list[str] = [header]
    used = cost(header)
    for line in lines:
        if len(current) > 1 and used + cost(line) > limit:
            chunks.append("\n".join(current))
            current, used = [header], cost(header)
        current.append(line)
        used += cost(line)
    chunks.append("\n".join(current))
    return chunks


@dataclass(frozen=True)
class Args:
    target: str
    paging: Paging
    filter: QueueFilter


def parse(ns: argparse.Namespace) -> Args:
    paging, words = take_paging(ns.words)
    try:
        return Args(ns.target, paging, QueueFilter.parse(words))
    except UsageError as exc:
        raise UsageError(exc.user_message, SPEC.usage) from None


async def run(args: Args, ctx: Context) -> ListPage:
    paging, queue_filter = args.paging, args.filter
    host = ctx.services.inventory.get(args.target)
    now = ctx.services.clock()
    page = PageBuilder(queue_filter, now, paging)
    await stream_queue(ctx.remote, host, now, page.add)
    return ListPage(
        host.name, now, queue_filter, paging, page.scanned, page.matched, page.recipients,
        page.bytes, page.rows,
    )  # fmt: skip


SPEC = CommandSpec(
    name="list",
    parse=parse,
    summary="The messages that match a filter (domain, sender, reason, age, queue, ID), "
    "with counts; a page at a time.",
    permission="read",
    template="list",
    examples=(
        "/mailq list mx1 reason=greylisted",
        "/mailq list mx1 domain=example.com older=2d limit=50",
        "/mailq list mx1 sender=<> queue=deferred",
    ),
    arguments=(
        HostArg("target", help="a host from the inventory", metavar="HOST"),
        Argument(
            "words",
            help="filters: domain= sender= reason= older= newer= queue= id=; limit= offset=",
            metavar="[domain=D] [sender=S] [reason=R] [older=2d] [queue=Q] [limit=N]",
            nargs="*",
        ),
    ),
    run=run,
)
