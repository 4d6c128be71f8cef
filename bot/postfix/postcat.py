"""``postcat`` command lines, a pure parser of their output, and finding one queued message.

``postcat -q ID`` prints a queue file in sections, each opened by a marker naming the file
relative to the queue directory (``*** ENVELOPE RECORDS deferred/B/B7D9B16A110 ***``):
envelope records (``name: value``), ``*** MESSAGE CONTENTS ***`` (headers, then the body,
whose first line is the empty separator), ``*** HEADER EXTRACTED ***`` (more records) and
``*** MESSAGE FILE END ***``. ``-e``, ``-h`` and ``-b`` print only the envelope, the headers
or the body; the markers appear only with ``-e`` (or with no flag), so ``-b`` output is the
bare body and ``-h`` output the bare headers. Record names vary between releases
(``create_time`` / ``queue_file_create_time``), so any ``lower_case: value`` record is
accepted; anything else in a record section is a ``ParseError``.

Trust: in ``-e``/``-eh`` output a marker cannot be forged, since a header line never starts
with ``***``. A *body* can hold marker-like lines, so the body is read on its own with ``-b``
and never searched for markers; in whole-file output a forged marker ends in a ``ParseError``
(markers are accepted once each, in order, and nothing may follow the end marker).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import ParseError, UsageError
from bot.postfix.models import QUEUE_NAMES, QueueMessage, is_queue_id
from bot.postfix.postfix import PostqueueJsonParser, QueueParser, _Lines

_MARKERS = ("ENVELOPE RECORDS", "MESSAGE CONTENTS", "HEADER EXTRACTED", "MESSAGE FILE END")
_MARKER = re.compile(rf"\*\*\* ({'|'.join(_MARKERS)}) (\S{{1,200}}) \*\*\*")
_PATH = re.compile(
    rf"({'|'.join(QUEUE_NAMES)})(?:/[0-9A-Za-z]{{1,2}}){{0,8}}/([0-9A-Za-z]{{1,40}})"
)
_RECORD = re.compile(r"([a-z][a-z_]{0,39}): ?(.*)")
_HEADER = re.compile(r"[!-9;-~]{1,200}:")  # printable ASCII but ':' then ':' (RFC 5322 2.2)
_NUMBERS = re.compile(r"[0-9]{1,19}(?: +[0-9]{1,19})*")
Status = Literal["waiting", "bounced", "delivered", "canceled"]
_STATUS: dict[str, Status] = {
    "recipient": "waiting",
    "done_recipient": "delivered",
    "canceled_recipient": "canceled",
}


# -- the model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    """A recipient record; ``original`` is the ``original_recipient`` before it, if any."""

    address: str
    original: str = ""
    status: Status = "waiting"


@dataclass(frozen=True, slots=True)
class Header:
    """One header as printed: ``lines[0]`` is ``Name: value``, the rest its folded lines."""

    name: str
    lines: tuple[str, ...]

    @property
    def value(self) -> str:
        """The value unfolded onto one line (raw: RFC 2047 words are not decoded here)."""
        first = self.lines[0][len(self.name) + 1 :]
        return " ".join(part.strip() for part in (first, *self.lines[1:])).strip()


@dataclass(frozen=True, slots=True)
class PostcatOutput:
    """What ``postcat`` printed about one queue file.

    ``content_size`` and ``recipient_count`` are fields 1 and 3 of ``message_size``;
    ``arrival`` is as printed (the host's local time, no zone). ``complete`` is False when
    the output stopped before ``*** MESSAGE FILE END ***`` (the caller stopped reading).
    """

    queue_id: str
    queue_name: str
    path: str
    sender: str | None = None
    recipients: tuple[EnvelopeRecipient, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    records: tuple[tuple[str, str], ...] = ()
    headers: tuple[Header, ...] = ()
    body: tuple[str, ...] = ()
    content_size: int | None = None
    recipient_count: int | None = None
    arrival: str = ""
    complete: bool = True


@dataclass
class _State:
    expected: str | None
    path: str = ""
    section: int = -1  # index into _MARKERS of the last marker seen
    in_body: bool = False
    line_no: int = 0
    original: str = ""
    fields: dict[str, object] = field(default_factory=dict)
    sender: str | None = None
    recipients: list[EnvelopeRecipient] = field(default_factory=list)
    attributes: list[tuple[str, str]] = field(default_factory=list)
    records: list[tuple[str, str]] = field(default_factory=list)
    headers: list[list[str]] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    def error(self, what: str) -> ParseError:
        return ParseError(f"`postcat` output line {self.line_no}: {what}.")


def parse_postcat(
    text: str, queue_id: str | None = None, *, truncated: bool = False
) -> PostcatOutput:
    """Parse ``postcat -q`` output with markers (no flag, ``-e``, ``-eh``, ``-beh``).

    ``queue_id``, if given, must be the file's. ``truncated`` says the caller stopped
    reading early: the last partial line is dropped and a missing end marker is allowed.
    """
    lines = _split(text, truncated)
    if not lines:
        raise ParseError(
            "`postcat` printed nothing: the queue file is empty or is not a queue file (it may "
            "still be being written). Try again in a moment."
        )
    state = _State(queue_id)
    for line in lines:
        state.line_no += 1
        _line(state, line)
    if state.section < 0:
        raise state.error("expected `*** ENVELOPE RECORDS ... ***`")
    if state.section < len(_MARKERS) - 1 and not truncated:
        raise ParseError(
            "`postcat` output ended before `*** MESSAGE FILE END ***`: it was cut short "
            "(timeout or lost connection). Try again."
        )
    return _output(state, complete=state.section == len(_MARKERS) - 1)


def parse_content(text: str, *, truncated: bool = False) -> tuple[tuple[Header, ...], list[str]]:
    """Headers and body lines of marker-less ``postcat -h``/``-bh``/``-b`` output."""
    state = _State(None)
    for line in _split(text, truncated):
        state.line_no += 1
        _content(state, line)
    return _headers(state), state.body


def _split(text: str, truncated: bool) -> list[str]:
    if truncated and "\n" in text:
        text = text[: text.rfind("\n") + 1]
    elif truncated:
        text = ""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _line(state: _State, line: str) -> None:
    marker = _MARKER.fullmatch(line) if line.startswith("*** ") else None
    if state.section == 1:  # message content: only this file's next marker ends it
        if marker is not None and marker.group(1) == _MARKERS[2] and marker.group(2) == state.path:
            _marker(state, marker.group(1), marker.group(2))
        else:
            _content(state, line)
    elif marker is not None:
        _marker(state, marker.group(1), marker.group(2))
    elif state.section in (0, 2):
        _record(state, line)
    elif state.section < 0:
        raise state.error("expected `*** ENVELOPE RECORDS ... ***`")
    else:
        raise state.error("text after `*** MESSAGE FILE END ***`")


def _marker(state: _State, name: str, path: str) -> None:
    index = _MARKERS.index(name)
    if index != state.section + 1:
        raise state.error(f"`*** {name} ***` out of order")
    if state.section < 0:
        state.path = _check_path(state, path)
    elif path != state.path:
        raise state.error("a section marker names a different queue file")
    state.section = index


def _check_path(state: _State, path: str) -> str:
    match = _PATH.fullmatch(path)
    if match is None or not is_queue_id(match.group(2)):
        raise state.error("the queue file name is not `queue/.../QUEUE_ID`")
    if state.expected is not None and match.group(2) != state.expected:
        raise state.error(f"postcat showed queue file {match.group(2)}, not {state.expected}")
    return path


def _record(state: _State, line: str) -> None:
    match = _RECORD.fullmatch(line)
    if match is None:
        raise state.error("not an envelope record (`name: value`)")
    name, value = match.group(1), match.group(2)
    if name in _STATUS:
        state.recipients.append(EnvelopeRecipient(value, state.original, _STATUS[name]))
        state.original = ""
    elif name == "original_recipient":
        state.original = value
    elif name == "sender":
        state.sender = value
    elif name == "named_attribute":
        key, _, val = value.partition("=")
        state.attributes.append((key, val))
    elif name == "message_size":
        state.fields.update(_sizes(state, value))
    else:
        if name in ("message_arrival_time", "arrival_time"):
            state.fields.setdefault("arrival", value.strip())
        state.records.append((name, value))


def _sizes(state: _State, value: str) -> dict[str, object]:
    if _NUMBERS.fullmatch(value.strip()) is None:
        raise state.error("message_size is not a list of numbers")
    numbers = value.split()
    count = int(numbers[2]) if len(numbers) > 2 else None
    return {"content_size": int(numbers[0]), "recipient_count": count}


def _content(state: _State, line: str) -> None:
    if state.in_body:
        state.body.append(line)
    elif _HEADER.match(line):
        state.headers.append([line])
    elif line[:1] in (" ", "\t") and state.headers:
        state.headers[-1].append(line)
    else:
        state.in_body = True
        state.body.append(line)


def _headers(state: _State) -> tuple[Header, ...]:
    return tuple(Header(lines[0].split(":", 1)[0], tuple(lines)) for lines in state.headers)


def _output(state: _State, complete: bool) -> PostcatOutput:
    match = _PATH.fullmatch(state.path)
    assert match is not None
    content_size = state.fields.get("content_size")
    count = state.fields.get("recipient_count")
    return PostcatOutput(
        queue_id=match.group(2),
        queue_name=match.group(1),
        path=state.path,
        sender=state.sender,
        recipients=tuple(state.recipients),
        attributes=tuple(state.attributes),
        records=tuple(state.records),
        headers=_headers(state),
        body=tuple(state.body),
        content_size=content_size if isinstance(content_size, int) else None,
        recipient_count=count if isinstance(count, int) else None,
        arrival=str(state.fields.get("arrival", "")),
        complete=complete,
    )


# -- recipients: the listing's reasons with postcat's records ---------------------------

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(@[^@]*)?')


@dataclass(frozen=True, slots=True)
class MessageRecipient:
    """A recipient as shown: ``reason`` only while waiting or bounced (its bounce reason);
    ``original`` only if different."""

    address: str
    status: Status
    reason: str = ""
    original: str = ""


def unquote_address(address: str) -> str:
    """The internal form: ``postqueue`` quotes a local part (``"<!x>"@d``), ``postcat`` not."""
    match = _QUOTED.fullmatch(address)
    if match is None:
        return address
    return re.sub(r"\\(.)", r"\1", match.group(1)) + (match.group(2) or "")


def merge_recipients(listing: QueueMessage, envelope: PostcatOutput) -> list[MessageRecipient]:
    """The listing's waiting recipients with their delay reasons, then postcat's done ones.

    A recipient the listing gives with a ``bounce_reason`` (Postfix >= 3.11) has bounced:
    it is done in the queue file (postcat would call it delivered) and waits only for its
    non-delivery notice, so it is shown as bounced, with that reason.
    """
    originals = {r.address: r.original for r in envelope.recipients if r.status == "waiting"}
    shown, bounced = [], set()
    for rcpt in listing.recipients:
        internal = unquote_address(rcpt.address)
        original = originals.get(internal, "") or rcpt.orig_address
        original = "" if original in (internal, rcpt.address) else original
        if rcpt.bounce_reason and not rcpt.delay_reason:
            bounced.add(internal)
            shown.append(MessageRecipient(rcpt.address, "bounced", rcpt.bounce_reason, original))
        else:
            shown.append(MessageRecipient(rcpt.address, "waiting", rcpt.delay_reason, original))
    for done in envelope.recipients:
        if done.status != "waiting" and done.address not in bounced:
            original = "" if done.original == done.address else done.original
            shown.append(MessageRecipient(done.address, done.status, "", original))
    return shown


# -- the body, read on its own ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyExcerpt:
    """The start of a body (``postcat -b``); ``complete`` when nothing was left out."""

    lines: tuple[str, ...]
    shown_bytes: int
    complete: bool


def body_excerpt(data: bytes, *, whole: bool, max_lines: int, max_bytes: int) -> BodyExcerpt:
    """The first ``max_lines`` lines / ``max_bytes`` bytes of ``postcat -b`` output.

    ``whole`` says ``data`` is all of the output. The empty line that separates headers and
    body is dropped; a single line longer than ``max_bytes`` is cut inside.
    """
    if data.startswith(b"\n"):
        data = data[1:]
    raw = data.split(b"\n")
    if raw and raw[-1] == b"" and whole:
        raw.pop()
    kept: list[bytes] = []
    size = 0
    cut = False
    for line in raw:
        if len(kept) == max_lines or size + len(line) + 1 > max_bytes:
            if not kept:
                kept.append(line[:max_bytes])
                size = len(kept[0])
            cut = True
            break
        kept.append(line)
        size += len(line) + 1
    complete = whole and not cut
    lines = tuple(line.decode("utf-8", errors="replace") for line in kept)
    return BodyExcerpt(lines, size, complete)


# -- finding one message in the queue listing -------------------------------------------


class ListingSearch:
    """Feed a queue listing chunk by chunk; ``found`` is the first record with the queue ID.

    For ``postqueue -j`` only lines that contain the ID are parsed (a byte search per
    chunk), so the cost is reading, not parsing; other listings go through ``parser``.
    """

    def __init__(self, queue_id: str, parser: QueueParser) -> None:
        if not is_queue_id(queue_id):
            raise UsageError(f"`{queue_id[:40]}` is not a Postfix queue ID.")
        self.queue_id = queue_id
        self.found: QueueMessage | None = None
        self.seen = 0  # messages passed over so far
        self._parser = parser
        self._json = isinstance(parser, PostqueueJsonParser)
        self._needle = queue_id.encode()
        self._lines = _Lines()

    def feed(self, chunk: bytes) -> QueueMessage | None:
        if self.found is None and self._json:
            self.seen += chunk.count(b"\n")
            self.found = self._json_feed(chunk)
        elif self.found is None:
            messages = self._parser.feed(chunk)
            self.seen += len(messages)
            self.found = self._pick(messages)
        return self.found

    def close(self) -> QueueMessage | None:
        if self.found is None and self._json and self._lines.rest().strip():
            raise ParseError(
                "`postqueue -j` output ended in the middle of a line: it was cut short "
                "(timeout or lost connection). Try again."
            )
        if self.found is None and not self._json:
            self.found = self._pick(self._parser.close())
        return self.found

    def _json_feed(self, chunk: bytes) -> QueueMessage | None:
        data = self._lines.complete(chunk)  # a long line is joined once, not once per chunk
        if data is None or self._needle not in data:
            return None
        return self._pick(self._json_lines(data))

    def _json_lines(self, data: bytes) -> Iterator[QueueMessage]:
        for line in data.split(b"\n"):
            if self._needle in line:
                yield from PostqueueJsonParser().feed(line + b"\n")

    def _pick(self, messages: Iterable[QueueMessage]) -> QueueMessage | None:
        return next((m for m in messages if m.queue_id == self.queue_id), None)
