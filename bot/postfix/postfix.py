"""Postfix command lines and pure parsers of their output.

Both queue parsers are streaming: ``feed(chunk)`` returns the messages completed by that
chunk, ``close()`` returns the rest and raises ``ParseError`` if the output stopped in the
middle. Any record that does not look exactly like Postfix's raises ``ParseError`` naming
the line: hostile or damaged output must never turn into a wrong queue ID or a silent
partial success.

``postqueue -j`` (Postfix >= 3.1) has no trailer, so output cut exactly at a line boundary
cannot be told from a shorter queue here: the caller must also check that the command
exited 0 (``timeout`` kills it with 124). ``postqueue -p`` ends with a trailer that states
the number of messages; the list parser checks it.

What each version prints: Postfix 2.0 to 3.0 format the listing in the ``showq`` daemon
(``showq/showq.c``), 3.1 on in ``postqueue`` itself (``postqueue/showq_compat.c``). The
message line is ``"%-11s %7ld %20.20s %s"`` (queue ID with its marker, size, ``asctime``
cut to 20 characters, sender; long queue IDs ``"%-17s %8ld %19.19s %s"``, 2.9 on); 2.1 to
2.4 have no space before the size (``"%-11s%8ld"``), and 2.0 pads the queue ID to 10 before
the marker (``"%-10s%c%8ld"``: ``ABCDEF123 *``), so a space may separate ID and marker.
``#`` (forced expiry) exists from 3.5 on. 3.11 also lists recipients that have bounced
and wait for their non-delivery notice, with the bounce reason in the same ``(...)`` line.

What ``postqueue -p`` cannot tell (``showq_compat.c``): the queue is marked only for
``active`` (``*``) and ``hold`` (``!``); ``#`` marks a forced expiry. An unmarked message
is reported as ``deferred`` when any recipient has a reason, otherwise as ``incoming``
(incoming, maildrop and the rare deferred file without a defer log look the same). The
arrival time has no year or zone: the year is the latest one that puts it not after
``now`` (allowing 26 hours for zone differences) with a matching weekday, and the zone is
the ``tz`` argument: the time is ``localtime()`` on the host, so callers pass the host's
UTC offset (``date +%z``, see ``utc_offset``); UTC by default. Reasons are printed once per
run of recipients that share them; ``(reason unavailable)`` means an empty reason. A
reason is never wrapped: showq prints it with one ``printf`` and replaces control
characters with ``?``. Postfix < 3.1 prints recipients that were never tried after the
reason blocks without a marker, so they inherit the last reason shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from operator import attrgetter
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec
import orjson

from bot.errors import ParseError
from bot.postfix.models import QUEUE_ID_PATTERN, QUEUE_NAMES, QueueMessage, Recipient, is_queue_id

MAX_LINE_BYTES = 64 * 1024 * 1024
_VERSION = re.compile(r"\s*(\d{1,4})\.(\d{1,4})")
_QUEUE_NAME_SET = frozenset(QUEUE_NAMES)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
_MAX_SIZE = 2**63 - 1
_T = TypeVar("_T")


_OFFSET = re.compile(r"([+-])(\d\d)(\d\d)")


def parse_utc_offset(stdout: str) -> int:
    """Seconds east of UTC from ``date +%z`` output (``+0530``, ``-0500``)."""
    match = _OFFSET.fullmatch(stdout.strip())
    if match is None:
        raise ParseError(f"`date +%z` printed `{stdout.strip()[:40]}`, not a UTC offset.")
    seconds = int(match[2]) * 3600 + int(match[3]) * 60
    return -seconds if match[1] == "-" else seconds


def mail_version_tuple(mail_version: str) -> tuple[int, int]:
    """``(major, minor)`` of ``postconf -h mail_version`` output (``3.7.11``, ``3.10-2025...``)."""
    match = _VERSION.match(mail_version)
    if match is None:
        raise ParseError("Could not read the Postfix version from `postconf -h mail_version`.")
    return int(match.group(1)), int(match.group(2))


def supports_json(mail_version: str) -> bool:
    """``postqueue -j`` exists from Postfix 3.1 on."""
    return mail_version_tuple(mail_version) >= (3, 1)


class QueueParser(Protocol):
    def feed(self, chunk: bytes) -> list[QueueMessage]: ...

    def close(self) -> list[QueueMessage]: ...


def parser_for(mail_version: str, *, now: float | None = None, tz: tzinfo = UTC) -> QueueParser:
    """A streaming parser for ``tools.queue_listing(mail_version)``'s output.

    ``now`` and ``tz`` only matter for ``postqueue -p`` (Postfix < 3.1), whose dates lack a
    year and a zone; ``now`` defaults to the clock when the parser is made.
    """
    if supports_json(mail_version):
        return PostqueueJsonParser()
    if now is None:
        now = datetime.now(UTC).timestamp()
    return PostqueueListParser(now=now, tz=tz)


# -- line splitting ---------------------------------------------------------------------


class _Lines:
    """Splits a byte stream into complete lines, keeping the unterminated rest."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0

    def split(self, chunk: bytes) -> list[bytes]:
        head = self.complete(chunk)
        return [] if head is None else head.split(b"\n")

    def complete(self, chunk: bytes) -> bytes | None:
        """The lines ``chunk`` completes, as one block without the last newline (None if it
        completes none). A line's parts are joined once, however many chunks it spans."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._keep(chunk)
            return None
        head = chunk[:end]
        if self._pending:
            head = b"".join([*self._pending, head])
            self._pending, self._pending_size = [], 0
        self._keep(chunk[end + 1 :])
        return head

    def rest(self) -> bytes:
        return b"".join(self._pending)

    def _keep(self, part: bytes) -> None:
        if not part:
            return
        self._pending.append(bytes(part))
        self._pending_size += len(part)
        if self._pending_size > MAX_LINE_BYTES:
            raise ParseError("Queue listing has a line longer than 64 MiB; refusing to parse it.")


def _truncated(tool: str, line_no: int) -> ParseError:
    return ParseError(
        f"`{tool}` output ended in the middle of line {line_no}: it was cut short "
        "(timeout or lost connection). Nothing from this listing was used."
    )


# -- postqueue -j -----------------------------------------------------------------------


class RecordSink(Protocol):
    """Receives each message of a listing as its checked fields (``feed_into``)."""

    def __call__(
        self,
        queue_name: str,
        queue_id: str,
        arrival_time: int,
        message_size: int,
        sender: str,
        recipients: list[dict[str, str]],
        forced_expire: bool,
        /,
    ) -> None: ...


class PostqueueJsonParser:
    """Streaming parser of ``postqueue -j``: one JSON object per line; unknown keys ignored.

    ``feed`` returns ``QueueMessage``s. ``feed_into`` hands each message's checked fields to
    a ``RecordSink`` instead, without building objects (the summary's fast path): the
    recipients are the decoded JSON objects, each with a string ``address`` and, if present,
    string ``delay_reason``, ``orig_address`` and ``bounce_reason`` members. Both accept and
    refuse exactly the same input.

    What each version prints (``postqueue/showq_json.c``): 3.1 to 3.4 ``queue_name``,
    ``queue_id``, ``arrival_time``, ``message_size``, ``sender`` and ``recipients`` with
    ``address`` and an optional ``delay_reason``; 3.5 adds ``forced_expire``; 3.11 adds
    ``orig_address`` to every recipient and lists recipients from the bounce log too, with
    ``bounce_reason``. Its catch-all ``other_reason`` (a log class other than defer and
    bounce, which showq never sends) is ignored like any unknown member.
    """

    def __init__(self) -> None:
        self._lines = _Lines()
        self._line_no = 0
        self._closed = False

    def feed(self, chunk: bytes) -> list[QueueMessage]:
        return _gathered(_message, lambda sink: self.feed_into(chunk, sink))

    def feed_into(self, chunk: bytes, sink: RecordSink) -> int:
        """Pass every message completed by ``chunk`` to ``sink``; the number passed."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        return self._lines_into(self._lines.split(chunk), sink)

    def _lines_into(self, lines: list[bytes], sink: RecordSink) -> int:
        loads, names, valid_id = orjson.loads, _QUEUE_NAME_SET, is_queue_id
        line_no, count = self._line_no, 0
        for line in lines:
            line_no += 1
            try:
                record = loads(line)
            except orjson.JSONDecodeError:
                if not line.strip():
                    continue
                self._line_no = line_no
                raise _json_error(line_no, "not valid JSON") from None
            # orjson gives exact types, so `type(x) is int` also rules out bool.
            if type(record) is dict:
                name, queue_id = record.get("queue_name"), record.get("queue_id")
                arrival, size = record.get("arrival_time"), record.get("message_size")
                sender, recipients = record.get("sender"), record.get("recipients")
                forced = record.get("forced_expire", False)
                if (
                    type(name) is str
                    and name in names
                    and type(queue_id) is str
                    and valid_id(queue_id)
                    and type(arrival) is int
                    and 0 <= arrival <= _MAX_EPOCH
                    and type(size) is int
                    and 0 <= size <= _MAX_SIZE
                    and type(sender) is str
                    and type(forced) is bool
                    and type(recipients) is list
                ):
                    for item in recipients:
                        if (
                            type(item) is not dict
                            or type(item.get("address")) is not str
                            or type(item.get("delay_reason", "")) is not str
                            or type(item.get("bounce_reason", "")) is not str
                            or type(item.get("orig_address", "")) is not str
                        ):
                            break
                    else:
                        sink(name, queue_id, arrival, size, sender, recipients, forced)
                        count += 1
                        continue
            self._line_no = line_no
            _json_message(record, line_no)  # raises the precise error
            raise _json_error(line_no, "not a valid queue record")  # pragma: no cover
        self._line_no = line_no
        return count

    def feed_records(self, chunk: bytes) -> list[JsonRecord]:
        """Every message completed by ``chunk``, as ``JsonRecord``s (the fleet's fast path).

        Accepts and refuses exactly what ``feed_into`` does, with the same errors. Each
        line is decoded and checked in C by ``msgspec`` (``JsonRecord``: no member beyond
        Postfix's own), and the chunk's queue IDs by one regular expression. If anything in
        the chunk fails that (a damaged line, a blank one, a member a later Postfix may
        add), the chunk is read again by ``feed_into``'s own checks (``orjson`` and
        Python), which accept what they accept and name what is wrong.
        """
        if self._closed:
            raise RuntimeError("feed() after close()")
        lines = self._lines.split(chunk)
        if not lines:
            return []
        try:
            records = list(map(_decode_record, lines))
        except msgspec.DecodeError:
            return self._checked_records(lines)
        ids = "\n".join(map(_record_id, records))
        if ids.count("\n") + 1 != len(records) or _QUEUE_ID_LINES.fullmatch(ids) is None:
            return self._checked_records(lines)
        self._line_no += len(records)
        return records

    def _checked_records(self, lines: list[bytes]) -> list[JsonRecord]:
        """``lines`` through ``feed_into``'s checks, as ``JsonRecord``s."""
        return _gathered(_record, lambda sink: self._lines_into(lines, sink))

    def close(self) -> list[QueueMessage]:
        self._closed = True
        if self._lines.rest().strip():
            raise _truncated("postqueue -j", self._line_no + 1)
        return []


QueueName = Literal["maildrop", "incoming", "active", "deferred", "hold", "corrupt"]


class JsonRecipient(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One recipient of a ``JsonRecord``, as ``postqueue -j`` prints it."""

    address: str
    delay_reason: str = ""
    orig_address: str = ""
    bounce_reason: str = ""


class JsonRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One ``postqueue -j`` line with only the members Postfix 3.1 to 3.11 print, typed
    and in range as ``feed_into`` checks them (its queue ID is checked apart: see
    ``feed_records``). A record holds no reference to itself, so the collector need not
    track it (``gc=False``)."""

    queue_name: QueueName
    queue_id: str
    arrival_time: Annotated[int, msgspec.Meta(ge=0, le=_MAX_EPOCH)]
    message_size: Annotated[int, msgspec.Meta(ge=0, le=_MAX_SIZE)]
    sender: str
    recipients: list[JsonRecipient]
    forced_expire: bool = False


_decode_record = msgspec.json.Decoder(JsonRecord).decode
_record_id = attrgetter("queue_id")
# A chunk's queue IDs joined with newlines: valid when this matches and the newlines are
# exactly the joins (an ID holding a newline would count twice).
_QUEUE_ID_LINES = re.compile(rf"(?:(?:{QUEUE_ID_PATTERN})\n)*(?:{QUEUE_ID_PATTERN})")


def _record(
    queue_name: QueueName,
    queue_id: str,
    arrival_time: int,
    message_size: int,
    sender: str,
    recipients: list[dict[str, str]],
    forced_expire: bool,
) -> JsonRecord:
    items = [
        JsonRecipient(
            item["address"],
            item.get("delay_reason", ""),
            item.get("orig_address", ""),
            item.get("bounce_reason", ""),
        )
        for item in recipients
    ]
    return JsonRecord(
        queue_name, queue_id, arrival_time, message_size, sender, items, forced_expire
    )


def record_of(message: QueueMessage) -> JsonRecord:
    """``message`` as a ``JsonRecord``."""
    items = [
        JsonRecipient(r.address, r.delay_reason, r.orig_address, r.bounce_reason)
        for r in message.recipients
    ]
    return JsonRecord(
        message.queue_name,  # type: ignore[arg-type]  # a queue name, as the parsers give it
        message.queue_id,
        message.arrival_time,
        message.message_size,
        message.sender,
        items,
        message.forced_expire,
    )


def _gathered(make: Callable[..., _T], feed: Callable[[RecordSink], object]) -> list[_T]:
    """What ``feed`` passes to its sink, each record made into a ``make(*fields)``."""
    made: list[_T] = []
    append = made.append

    def collect(*fields: Any) -> None:
        append(make(*fields))

    feed(collect)
    return made


def _message(
    queue_name: str,
    queue_id: str,
    arrival_time: int,
    message_size: int,
    sender: str,
    recipients: list[dict[str, str]],
    forced_expire: bool,
) -> QueueMessage:
    return QueueMessage(
        queue_name=queue_name,
        queue_id=queue_id,
        arrival_time=arrival_time,
        message_size=message_size,
        sender=sender,
        recipients=tuple(
            Recipient(
                item["address"],
                item.get("delay_reason", ""),
                item.get("orig_address", ""),
                item.get("bounce_reason", ""),
            )
            for item in recipients
        ),
        forced_expire=forced_expire,
    )


def _json_error(line_no: int, what: str) -> ParseError:
    return ParseError(f"`postqueue -j` output line {line_no}: {what}.")


def _json_message(record: object, line_no: int) -> QueueMessage:
    """Check ``record`` field by field, raising a ``ParseError`` that names the problem."""
    if not isinstance(record, dict):
        raise _json_error(line_no, "not a JSON object")
    forced = record.get("forced_expire", False)
    if not isinstance(forced, bool):
        raise _json_error(line_no, "forced_expire is not true/false")
    return QueueMessage(
        queue_name=_queue_name(record.get("queue_name"), line_no),
        queue_id=_queue_id(record.get("queue_id"), line_no),
        arrival_time=_count(record.get("arrival_time"), line_no, "arrival_time", _MAX_EPOCH),
        message_size=_count(record.get("message_size"), line_no, "message_size", _MAX_SIZE),
        sender=_text(record.get("sender"), line_no, "sender"),
        recipients=_json_recipients(record.get("recipients"), line_no),
        forced_expire=forced,
    )


def _queue_name(value: object, line_no: int) -> str:
    if not isinstance(value, str) or value not in _QUEUE_NAME_SET:
        raise _json_error(line_no, "queue_name is not a Postfix queue name")
    return value


def _queue_id(value: object, line_no: int) -> str:
    if not isinstance(value, str) or not is_queue_id(value):
        raise _json_error(line_no, "queue_id is not a valid Postfix queue ID")
    return value


def _count(value: object, line_no: int, field: str, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise _json_error(line_no, f"{field} is not a whole number in range")
    return value


def _text(value: object, line_no: int, field: str) -> str:
    if not isinstance(value, str):
        raise _json_error(line_no, f"{field} is not a string")
    return value


def _json_recipients(value: object, line_no: int) -> tuple[Recipient, ...]:
    if not isinstance(value, list):
        raise _json_error(line_no, "recipients is not a list")
    recipients: list[Recipient] = []
    for item in value:
        if not isinstance(item, dict):
            raise _json_error(line_no, "a recipient is not a JSON object")
        address = _text(item.get("address"), line_no, "recipient address")
        reason = _text(item.get("delay_reason", ""), line_no, "delay_reason")
        original = _text(item.get("orig_address", ""), line_no, "orig_address")
        bounce = _text(item.get("bounce_reason", ""), line_no, "bounce_reason")
        recipients.append(Recipient(address, reason, original, bounce))
    return tuple(recipients)


# -- postqueue -p -----------------------------------------------------------------------

_HEADER = re.compile(r"-+Queue ID-+ +-+Size-+ +-+Arrival Time-+ +-+Sender/Recipient-+ *")
_TRAILER = re.compile(r"-- \d{1,20} Kbytes in (\d{1,12}) Requests?\.")
_EMPTY = "Mail queue is empty"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MESSAGE = re.compile(
    r"(?P<id>[0-9A-Za-z]{1,40}) *(?P<status>[*!]?)(?P<expired>#?) +(?P<size>\d{1,19}) "
    rf"(?P<wday>{'|'.join(_WEEKDAYS)}) (?P<month>{'|'.join(_MONTHS)}) (?P<day>[ \d]\d) "
    r"(?P<hh>\d\d):(?P<mm>\d\d):(?P<ss>\d\d) +(?P<sender>\S.*)"
)
_MAILDROP = re.compile(r"\(maildrop queue, sender UID \d+\)")
_UNAVAILABLE = "reason unavailable"
_ZONE_SLACK = timedelta(hours=26)


def infer_arrival(
    month: int, day: int, clock: tuple[int, int, int], weekday: int, now: float, tz: tzinfo
) -> int:
    """Epoch seconds of a year-less local date: the latest plausible year (see module doc)."""
    limit = datetime.fromtimestamp(now, tz) + _ZONE_SLACK
    fallback: datetime | None = None
    for year in range(limit.year, limit.year - 12, -1):
        try:
            when = datetime(year, month, day, *clock, tzinfo=tz)
        except ValueError:
            continue
        if when > limit:
            continue
        if when.weekday() == weekday:
            return int(when.timestamp())
        fallback = fallback or when
    if fallback is None:
        raise ValueError("no such date")
    return int(fallback.timestamp())


class _ListState:
    """The ``postqueue -p`` grammar, one decoded line at a time."""

    def __init__(self, now: float, tz: tzinfo) -> None:
        self._now, self._tz = now, tz
        self.line_no = 0
        self._state = "start"  # start -> body -> done
        self._count = 0
        self._head: tuple[str, str, int, int, str, bool] | None = None
        self._recipients: list[Recipient] = []
        self._reason = ""

    def line(self, text: str) -> QueueMessage | None:
        self.line_no += 1
        if self._state == "start":
            self._start(text)
            return None
        if self._state == "done":
            if text.strip():
                raise self._error("text after the summary line")
            return None
        return self._body(text)

    def finish(self) -> None:
        if self._state != "done":
            raise ParseError(
                "`postqueue -p` output ended before its summary line: it was cut short "
                "(timeout or lost connection). Nothing from this listing was used."
            )

    def _error(self, what: str) -> ParseError:
        return ParseError(f"`postqueue -p` output line {self.line_no}: {what}.")

    def _start(self, text: str) -> None:
        if text.strip() == _EMPTY:
            self._state = "done"
        elif _HEADER.fullmatch(text):
            self._state = "body"
        elif text.strip():
            raise self._error("expected the column headings or 'Mail queue is empty'")

    def _body(self, text: str) -> QueueMessage | None:
        if not text.strip():
            return self._flush()
        trailer = _TRAILER.fullmatch(text)
        if trailer is not None:
            return self._trailer(int(trailer.group(1)))
        stripped = text.strip()
        if stripped.startswith("(") and stripped.endswith(")"):
            self._reason_line(stripped[1:-1])
        elif text[0] == " ":
            self._recipient_line(stripped)
        else:
            self._message_line(text)
        return None

    def _trailer(self, expected: int) -> QueueMessage | None:
        message = self._flush()
        self._state = "done"
        if expected != self._count:
            raise self._error(
                f"the summary counts {expected} messages but {self._count} were listed"
            )
        return message

    def _flush(self) -> QueueMessage | None:
        if self._head is None:
            return None
        queue_id, status, size, arrival, sender, expired = self._head
        recipients = tuple(self._recipients)
        self._head, self._recipients, self._reason = None, [], ""
        self._count += 1
        return QueueMessage(
            queue_name=_list_queue_name(status, sender, recipients),
            queue_id=queue_id,
            arrival_time=arrival,
            message_size=size,
            sender="" if _MAILDROP.fullmatch(sender) else sender,
            recipients=recipients,
            forced_expire=expired,
        )

    def _reason_line(self, reason: str) -> None:
        if self._head is None:
            raise self._error("a delay reason outside a message")
        self._reason = "" if reason == _UNAVAILABLE else reason

    def _recipient_line(self, address: str) -> None:
        if self._head is None:
            raise self._error("a recipient outside a message")
        self._recipients.append(Recipient(address, self._reason))

    def _message_line(self, text: str) -> None:
        if self._head is not None:
            raise self._error("a new message without the blank line before it")
        match = _MESSAGE.fullmatch(text)
        if match is None:
            raise self._error("not a message line (queue ID, size, arrival time, sender)")
        if not is_queue_id(match["id"]):
            raise self._error("not a valid Postfix queue ID")
        self._head = (
            match["id"],
            match["status"],
            int(match["size"]),
            self._arrival(match),
            match["sender"],
            match["expired"] == "#",
        )

    def _arrival(self, match: re.Match[str]) -> int:
        clock = (int(match["hh"]), int(match["mm"]), int(match["ss"]))
        try:
            return infer_arrival(
                _MONTHS.index(match["month"]) + 1,
                int(match["day"]),
                clock,
                _WEEKDAYS.index(match["wday"]),
                self._now,
                self._tz,
            )
        except (ValueError, OverflowError):
            raise self._error("the arrival time is not a valid date") from None


def _list_queue_name(status: str, sender: str, recipients: tuple[Recipient, ...]) -> str:
    if status == "*":
        return "active"
    if status == "!":
        return "hold"
    if _MAILDROP.fullmatch(sender):
        return "maildrop"
    return "deferred" if any(r.delay_reason for r in recipients) else "incoming"


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


class PostqueueListParser:
    """Streaming parser of ``postqueue -p`` (any Postfix version); see the module doc."""

    def __init__(self, *, now: float, tz: tzinfo = UTC) -> None:
        self._lines = _Lines()
        self._state = _ListState(now, tz)
        self._closed = False

    def feed(self, chunk: bytes) -> list[QueueMessage]:
        if self._closed:
            raise RuntimeError("feed() after close()")
        messages: list[QueueMessage] = []
        for line in self._lines.split(chunk):
            message = self._state.line(_decode(line))
            if message is not None:
                messages.append(message)
        return messages

    def close(self) -> list[QueueMessage]:
        self._closed = True
        if self._lines.rest().strip():
            raise _truncated("postqueue -p", self._state.line_no + 1)
        self._state.finish()
        return []


def parse_postqueue_list(
    source: str | Iterable[str], *, now: float, tz: tzinfo = UTC
) -> Iterator[QueueMessage]:
    """Parse ``postqueue -p`` text (a string, split at ``\\n`` only, or its lines).

    Raises ``ParseError`` at the end if the summary line never came.
    """
    lines = source.split("\n") if isinstance(source, str) else source
    state = _ListState(now, tz)
    for line in lines:
        message = state.line(line.rstrip("\r\n"))
        if message is not None:
            yield message
    state.finish()
