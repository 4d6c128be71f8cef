"""``/mailq show HOST QUEUE_ID [body]``: one queued message, its recipients and headers.

Three reads, each stopped as soon as it has what it needs:

1. ``postqueue -j`` (no root) streamed until the message's record: queue, arrival time,
   size, sender, and each waiting recipient's delay reason (``postcat`` has no reasons:
   they live in the defer log, which only ``showq`` reads). An ID not listed ends here.
2. ``sudo postcat -eh -q ID``: envelope records and headers, never the body; at most
   ``ENVELOPE_CAP`` bytes are read.
3. only with ``body`` (and the ``act`` permission: bodies are private):
   ``sudo postcat -b -q ID``, closed after ``BODY_BYTES`` bytes / ``BODY_LINES`` lines.
   The result is then ``private``: front ends show it only to the person who asked, and
   the audit trail keeps no hash of the body (a hash of a short body can be guessed back).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import TYPE_CHECKING

from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import CommandFailed, NotInQueue, PermissionDenied, UsageError
from bot.inventory import Host
from bot.postfix import tools
from bot.postfix.models import QueueMessage, is_queue_id
from bot.postfix.reader import listing_parser, mail_version
from bot.remote.command import RemoteCommand
from bot.text import clean, num, size, table

if TYPE_CHECKING:
    from bot.context import Context
    from bot.postfix.postcat import BodyExcerpt, MessageRecipient, PostcatOutput

ENVELOPE_CAP = 1024 * 1024  # bytes of `postcat -eh` output read at most
BODY_BYTES = 4096
BODY_LINES = 60
_MARKS = re.compile(r"[*!#]+$")  # postqueue -p marks an ID: active, hold, forced expiry
Take = Callable[[bytes], Awaitable[bool]]


def queue_id_argument(text: str) -> str:
    """The queue ID as typed, forgiving ``postqueue -p``'s ``*``/``!`` marks and lower case."""
    candidate = _MARKS.sub("", text.strip())
    if not is_queue_id(candidate) and re.fullmatch(r"[0-9a-f]{6,24}", candidate, re.IGNORECASE):
        candidate = candidate.upper()  # short IDs are upper-case hex; long ones have a 'z'
    if not is_queue_id(candidate):
        raise UsageError(
            f"`{text[:40]}` is not a Postfix queue ID (like `3F67B16B2ED`, or a long one like "
            "`4Y2FQ3Lkb1z9Kq`). `/mailq list HOST` shows the IDs.",
            usage=SPEC.usage,
        )
    return candidate


def _body_word(word: str | None) -> bool:
    if word is None or word.lower() == "body":
        return word is not None
    raise UsageError(
        f"`{word[:40]}`: after the queue ID only the word `body` may follow.", usage=SPEC.usage
    )


def not_in_queue(queue_id: str, host: str, *, just_now: bool = False) -> NotInQueue:
    where = f"`/mailq list {host}` shows what is queued."
    if just_now:
        return NotInQueue(
            f"Message {queue_id} left the queue on {host} while mailqbot was reading it: it "
            f"was probably delivered or deleted just now. {where}"
        )
    return NotInQueue(
        f"No message {queue_id} in the queue on {host}: it may have been delivered or "
        f"deleted. {where}"
    )


@dataclass(frozen=True)
class Args:
    target: str
    queue_id: str
    body: bool


def parse(ns: argparse.Namespace) -> Args:
    return Args(ns.target, queue_id_argument(ns.queue_id), _body_word(ns.body))


async def run(args: Args, ctx: Context) -> ShowModel:
    # postcat's parsers load when a message is shown, not for every command line (~20 ms)
    from bot.postfix.postcat import merge_recipients

    host = ctx.services.inventory.get(args.target)
    queue_id, want_body = args.queue_id, args.body
    if want_body:
        _check_body_allowed(ctx, host)
    listing = await _find(ctx, host, queue_id)
    envelope, cut = await _envelope(ctx, host, queue_id)
    body = await _body(ctx, host, queue_id) if want_body else None
    return ShowModel(
        host=host.name,
        now=ctx.services.clock(),
        listing=listing,
        postcat=envelope,
        recipients=tuple(merge_recipients(listing, envelope)),
        body=body,
        body_requested=want_body,
        envelope_cut=cut,
        body_limits=(BODY_LINES, BODY_BYTES),
    )


def _check_body_allowed(ctx: Context, host: Host) -> None:
    if ctx.may("act", [host.name]):
        return
    raise PermissionDenied(
        f"Reading a message body on {host.name} needs the operator role: bodies are private "
        f"mail. Without `body`, `/mailq show {host.name} QUEUE_ID` shows the envelope, delay "
        "reasons and headers; ask a mailqbot admin if you need bodies."
    )


async def _find(ctx: Context, host: Host, queue_id: str) -> QueueMessage:
    from bot.postfix.postcat import ListingSearch

    services = ctx.services
    version = await mail_version(ctx.remote, host)
    parser = await listing_parser(ctx.remote, host, version, services.clock())
    search = ListingSearch(queue_id, parser)

    async def take(chunk: bytes) -> bool:
        found = search.feed(chunk)
        if found is None:
            await ctx.remote.report(f"{host.name}: looked at {search.seen:,} messages…")
        return found is not None

    whole = await _stream(ctx, host, tools.queue_listing(version), take)
    found = search.close() if whole else search.found
    if found is None:
        raise not_in_queue(queue_id, host.name)
    return found


async def _envelope(ctx: Context, host: Host, queue_id: str) -> tuple[PostcatOutput, bool]:
    from bot.postfix.postcat import parse_postcat
    from bot.postfix.tools import postcat

    data = bytearray()

    async def take(chunk: bytes) -> bool:
        data.extend(chunk)
        return len(data) > ENVELOPE_CAP

    command = postcat(queue_id, "eh", sudo=host.sudo)
    whole = await _postcat(ctx, host, command, take)
    text = bytes(data[:ENVELOPE_CAP]).decode("utf-8", errors="replace")
    return parse_postcat(text, queue_id, truncated=not whole), not whole


async def _body(ctx: Context, host: Host, queue_id: str) -> BodyExcerpt:
    from bot.postfix.postcat import body_excerpt
    from bot.postfix.tools import postcat

    data = bytearray()

    async def take(chunk: bytes) -> bool:
        data.extend(chunk)
        return len(data) > BODY_BYTES + 1  # + the empty line before the body

    command = postcat(queue_id, "b", sudo=host.sudo)
    whole = await _postcat(ctx, host, command, take, private=True)
    return body_excerpt(bytes(data), whole=whole, max_lines=BODY_LINES, max_bytes=BODY_BYTES)


async def _postcat(
    ctx: Context, host: Host, command: RemoteCommand, take: Take, *, private: bool = False
) -> bool:
    try:
        return await _stream(ctx, host, command, take, private=private)
    except CommandFailed as exc:
        if "open queue file" in exc.stderr and "No such file" in exc.stderr:
            raise not_in_queue(command.argv[-1], host.name, just_now=True) from None
        raise


async def _stream(
    ctx: Context, host: Host, command: RemoteCommand, take: Take, *, private: bool = False
) -> bool:
    """Feed ``command``'s output to ``take`` until it says stop; True if all was read.

    Stopping early closes the channel (the command dies of SIGPIPE). The audit record says
    how much was read; the output itself is never logged or kept, and for ``private``
    output (a message body) not even its hash.
    """
    async with ctx.remote.stream(host, command, private=private) as out:
        async for chunk in out:
            if await take(chunk):
                return False
        return True


# -- the model the templates render -----------------------------------------------------

KEY_HEADERS = ("Subject", "From", "To", "Cc", "Date", "Message-ID")
_LABELS = {
    "waiting": "no delay reason yet (not tried yet, or being delivered now)",
    "bounced": "bounced; the non-delivery notice is not sent yet",
    "delivered": "already delivered",
    "canceled": "canceled (will not be sent)",
}
_COST = {"&": 5, "<": 4, ">": 4}


def fit(text: str, limit: int) -> str:
    """``text`` cleaned and cut so that, mrkdwn-escaped, it stays within ``limit`` chars."""
    text = clean(text)
    cost = 0
    for i, char in enumerate(text):
        cost += _COST.get(char, 1)
        if cost > limit - 1:
            return text[:i] + "…"
    return text


_REASONED = ("waiting", "bounced")  # statuses shown with their reason


def _status_text(status: str, reason: str) -> str:
    if status == "waiting":
        return reason
    return f"bounced: {reason}" if status == "bounced" and reason else _LABELS[status]


def one_line(text: str) -> str:
    return " ".join(text.split())


def decoded(value: str) -> str:
    """A header value with RFC 2047 words decoded, on one line (raw if undecodable)."""
    try:
        return one_line(str(make_header(decode_header(value))))
    except (ValueError, LookupError, HeaderParseError):
        return one_line(value)


@dataclass(frozen=True)
class RecipientGroup:
    label: str
    status: str
    addresses: list[str]


@dataclass(frozen=True)
class ShowModel:
    """``listing`` is the message's ``postqueue`` record, ``postcat`` its envelope+headers."""

    host: str
    now: float
    listing: QueueMessage
    postcat: PostcatOutput
    recipients: tuple[MessageRecipient, ...]
    body: BodyExcerpt | None
    body_requested: bool
    envelope_cut: bool
    body_limits: tuple[int, int]  # lines, bytes
    fit = staticmethod(fit)

    @property
    def queue_id(self) -> str:
        return self.listing.queue_id

    @property
    def private(self) -> bool:
        """A body is private mail: only the person who asked for it may see this result."""
        return self.body_requested

    @property
    def filename(self) -> str:
        return f"{self.queue_id}-{self.host}.txt"

    @property
    def file_title(self) -> str:
        body = ", headers and the start of the body" if self.body is not None else " and headers"
        return f"Message {self.queue_id} on {self.host}: envelope{body}"

    @property
    def sender(self) -> str:
        envelope = self.postcat.sender
        null = envelope == "" or (envelope is None and not self.listing.sender)
        return "<> (null sender: a bounce or notice)" if null else one_line(self.listing.sender)

    def count(self, status: str) -> int:
        return sum(1 for r in self.recipients if r.status == status)

    def recipient_counts(self) -> str:
        words = {
            "waiting": "waiting",
            "bounced": "bounced (notice not sent yet)",
            "delivered": "already delivered",
            "canceled": "canceled",
        }
        counts = [(self.count(status), word) for status, word in words.items()]
        return ", ".join(f"{num(n)} {word}" for n, word in counts if n) or "none"

    def groups(self) -> list[RecipientGroup]:
        """Recipients grouped by status and delay reason, in order of first appearance."""
        groups: dict[tuple[str, str], list[str]] = {}
        for r in self.recipients:
            groups.setdefault((r.status, one_line(r.reason)), []).append(one_line(r.address))
        return [
            RecipientGroup(reason if status in _REASONED and reason else _LABELS[status], status, a)
            for (status, reason), a in groups.items()
        ]

    def key_headers(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for header in self.postcat.headers:
            name = "Message-ID" if header.name.lower() == "message-id" else header.name.title()
            if name in KEY_HEADERS and name not in seen:
                seen[name] = decoded(header.value)
        return [(name, seen[name]) for name in KEY_HEADERS if name in seen]

    def header_lines(self) -> list[str]:
        return [line for header in self.postcat.headers for line in header.lines]

    def client(self) -> str:
        attrs = dict(self.postcat.attributes)
        parts = (
            attrs.get("log_message_origin") or attrs.get("client_name", ""),
            f"HELO {attrs['helo_name']}" if "helo_name" in attrs else "",
            attrs.get("protocol_name", ""),
        )
        return one_line(", ".join(part for part in parts if part))

    def recipient_table(self) -> str:
        rows = [[r.address, r.original, _status_text(r.status, r.reason)] for r in self.recipients]
        return table(rows, ["recipient", "original recipient", "delay reason / status"])

    def record_table(self) -> str:
        rows = [[name, value.strip()] for name, value in self.postcat.records]
        rows += [[f"attribute {key}", value] for key, value in self.postcat.attributes]
        return table(rows, ["envelope record", "value"])

    def body_text(self) -> str:
        return "\n".join(self.body.lines) if self.body else ""

    def body_note(self) -> str:
        """What part of the body is shown, and about how much was left out."""
        if not self.body_requested or self.body is None:
            return f"Body withheld: add `body` (`/mailq show {self.host} {self.queue_id} body`)."
        shown = f"{num(len(self.body.lines))} lines, {size(self.body.shown_bytes)}"
        if self.body.complete:
            return f"Body ({shown}), complete."
        lines, limit = self.body_limits
        note = f"Body: the first {shown} (at most {lines} lines / {size(limit)})"
        missing = self._body_missing()
        return note + (f"; about {size(missing)} not shown." if missing else "; more not shown.")

    def _body_missing(self) -> int:
        """Bytes of body not shown, estimated from ``message_size`` (lines end in CRLF there)."""
        if self.body is None or self.postcat.content_size is None or not self.postcat.complete:
            return 0
        headers = sum(len(line.encode()) + 2 for line in self.header_lines()) + 2
        shown = self.body.shown_bytes + len(self.body.lines)
        return max(0, self.postcat.content_size - headers - shown)


SPEC = CommandSpec(
    name="show",
    parse=parse,
    summary="One queued message: envelope, recipients with their delay reasons, headers; "
    "add `body` for the start of the body.",
    permission="read",
    template="show",
    examples=("/mailq show mx1 3F67B16B2ED", "/mailq show mx1 3F67B16B2ED body"),
    arguments=(
        HostArg("target", help="a host from the inventory", metavar="HOST"),
        Argument("queue_id", help="the message's queue ID", metavar="QUEUE_ID"),
        # Checked in run: the registry's parser lets a bad `choices` value escape as a crash.
        Argument("body", help="the word `body`: the body's start", metavar="[body]", nargs="?"),
    ),
    run=run,
)
