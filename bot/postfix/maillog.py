"""The Postfix mail log: status lines parsed and counted with bounded memory.

Where the log is and the commands that read it: ``bot.postfix.logsource``.

A delivery line is ``QUEUE_ID: to=<...>, [orig_to=<...>, ]relay=..., FIELDS, status=WORD
(reason)``, written by ``global/log_adhoc.c`` (2.1 on; 2.0 by ``sent.c``, ``defer.c`` and
``bounce.c`` with the same words). The FIELDS between ``relay`` and ``status`` changed:

=========  ===========================================================================
2.0-2.2    ``delay=N`` (whole seconds)
2.3-3.10   ``[conn_use=N, ]delay=N.N, delays=a/b/c/d, dsn=X.Y.Z``
3.11       ``..., delays=a/b/c/d, [tls=FEATURES, ]dsn=X.Y.Z`` (``smtp_log_tls_feature_status``)
=========  ===========================================================================

Any other ``name=value`` field there is tolerated (kept out of the result), so a new field
does not hide the line. Status words: ``sent``, ``deferred``, ``bounced``, ``SOFTBOUNCE``
(``soft_bounce = yes``, 2.1 on; 2.0 logs ``deferred (SOFT BOUNCE - ...)``), and for address
probes ``deliverable``, ``undeliverable`` and ``undeliverable-but-not-cached``
(``global/verify.c``, ``trace.c``). Message lines: ``from=<...>, status=expired, returned to
sender`` (``qmgr/qmgr_active.c``; ``force-expired`` from 3.5 on, ``postsuper -e``), and
``status=deferred (bounce failed)`` with no address (``global/bounce.c``, ``abounce.c``).
A status word outside ``KNOWN_STATUSES`` is still counted under its own name.

The line before ``QUEUE_ID:`` depends on who wrote it down; all of these are read::

    Nov 28 11:09:51 mail postfix/smtp[29156]: ...            syslog, Postfix's maillog_file
    2026-11-28T11:09:51.123456+01:00 mail postfix/smtp[29156]: ...    rsyslog RFC 3339
    2026-11-28T11:09:51.123456+0100 mail postfix/smtp[29156]: ...     journalctl -o short-iso
    Nov 28 11:09:51 postfix/smtp[29156]: ...                 container logs without a host
    2026-11-28T10:09:51.123456789Z Nov 28 10:09:51 mail postfix/smtp[1]: ...   docker logs -t
    postfix-1  | Nov 28 11:09:51 mail postfix/smtp[29156]: ...       docker compose logs

``parse_line`` returns a ``Delivery`` for such a line and ``None`` for anything else; it never
raises and never returns an invalid queue ID. Addresses are matched with Postfix's quoting
(``"<!channel>"@evil.test``), so a hostile address cannot shift the fields after it.
``is_status_line`` tells which of the ``None`` lines looked like Postfix status lines: those
are counted as unreadable, with examples, so format drift shows instead of hiding.

Times: the first stamp on the line counts (the collector's, which carries a zone where there
is one). A syslog stamp has no year and no zone. It is read in the host's zone
(``tools.utc_offset``, ``date +%z``; one offset for the whole window, so a DST change
inside it shifts times by an hour) and given the latest year that does not put it more than
a day after ``now``. An ISO stamp without an offset is read the same way. A line without any
stamp cannot be placed in the window and counts as unreadable.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime
from time import gmtime
from typing import NamedTuple

from bot.postfix.models import is_queue_id
from bot.postfix.reasons import ReasonClass, analyse
from bot.postfix.summary import OTHER_KEY, BoundedCounter, domain_of

MAX_LINE_BYTES = 64 * 1024  # longer lines are skipped (counted malformed), never buffered
KNOWN_STATUSES = frozenset(
    {
        "sent", "deferred", "bounced", "expired", "force-expired", "SOFTBOUNCE",
        "deliverable", "undeliverable", "undeliverable-but-not-cached",
    }
)  # fmt: skip
_MONTHS = dict(zip(("Jan", "Feb", "Mar", "Apr", "May", "Jun"), range(1, 7), strict=True)) | dict(
    zip(("Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), range(7, 13), strict=True)
)
_DAY = 86400
# An address as Postfix logs it: quoted strings may hold '>'; written "unrolled" (normal*
# (special normal*)*) so the regular expression engine never backtracks through it.
_ADDR = r'[^">]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^">]*)*'
_NUM = r"\d{1,12}(?:\.\d{1,9})?"
_STAMP = (
    r"[A-Z][a-z]{2} [ 0-3]\d [0-2]\d:[0-5]\d:[0-6]\d"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
)
_COMPOSE = r"(?:[A-Za-z0-9][\w.-]{0,127} +\| )?"  # docker compose logs: "postfix-1  | "
_TIMESTAMP = re.compile(rf"{_COMPOSE}({_STAMP})")
_LINE = re.compile(
    rf"{_COMPOSE}(?:(?P<ts>{_STAMP}) )?(?:(?:{_STAMP}) )?(?:\S{{1,255}} )?"
    r"(?P<prog>[\w.+/-]{1,64})(?:\[\d{1,10}\])?: (?P<qid>[0-9A-Za-z]{6,40}): "
    rf"(?:to=<(?P<to>{_ADDR})>, (?:orig_to=<{_ADDR}>, )?relay=(?P<relay>[^,\s]*), "
    r"(?P<fields>(?:[a-z_]{1,32}=[^,\s]{0,256}, ){0,16})"
    rf"|(?:from=<{_ADDR}>, )?)"
    r"status=(?P<status>[A-Za-z][A-Za-z-]{0,39})(?: \((?P<reason>.*)\)|, (?P<note>.*))?"
)
_DELAYS = re.compile(rf"({_NUM})/({_NUM})/({_NUM})/({_NUM})")
# The fields in the order log_adhoc.c writes them: the fast path of ``_fields``.
_ORDERED = re.compile(
    rf"(?:conn_use=\d{{1,9}}, )?(?:delay={_NUM}, )?"
    rf"(?:delays=({_NUM})/({_NUM})/({_NUM})/({_NUM}), )?"
    r"(?:tls=([^,\s]{1,256}), )?(?:dsn=(\d\.\d{1,3}\.\d{1,3}), )?"
)
_DELAY = re.compile(_NUM)
_DSN = re.compile(r"\d\.\d{1,3}\.\d{1,3}")
_TLS = re.compile(
    r"[!]?[a-z-]{1,32}(?::[a-z-]{1,32})?[?]?(?:/[!]?[a-z-]{1,32}(?::[a-z-]{1,32})?[?]?){0,7}"
)
_STATUS_LINE = re.compile(r"[:,] status=")


class Delivery(NamedTuple):
    """One ``status=`` line: a recipient's delivery attempt, or a message's expiry.

    ``recipient`` and ``relay`` are empty on message lines (``from=<...>, status=expired``);
    ``delays`` is ``(a, b, c, d)`` in seconds when logged; ``tls`` is the 3.11 ``tls=``
    value as logged (see ``tls_features``), or empty. (A tuple: millions are made.)
    """

    when: float
    queue_id: str
    status: str
    recipient: str
    relay: str
    delays: tuple[float, float, float, float] | None
    dsn: str
    reason: str
    program: str
    tls: str = ""


class TlsFeature(NamedTuple):
    """One feature of a ``tls=`` value (``global/pol_stats.c``, ``pol_stats_format``).

    ``name`` is the level or feature asked for (``none``, ``may``, ``encrypt``,
    ``fingerprint``, ``dane``, ``dane-only``, ``verify``, ``secure``, ``unknown``, or
    ``requiretls``); ``final`` what it was downgraded to (``dane:encrypt`` -> ``encrypt``;
    the same as ``name`` when not); ``violated`` when ``!`` marks the policy as not met (the
    connection was not used); ``undecided`` when ``?`` marks no decision (no connection).
    """

    name: str
    final: str
    violated: bool
    undecided: bool


def tls_features(value: str) -> tuple[TlsFeature, ...]:
    """The features of a ``tls=`` value, e.g. ``encrypt?/!requiretls:nocertmatch``."""
    features = []
    for part in value.split("/"):
        violated = part.startswith("!")
        undecided = part.endswith("?")
        name, _, final = part.strip("!?").partition(":")
        features.append(TlsFeature(name, final or name, violated, undecided))
    return tuple(features)


class LogClock:
    """Epoch seconds of log timestamps (see the module docstring)."""

    def __init__(self, now: float, utc_offset: int = 0) -> None:
        self.now, self.offset = now, utc_offset
        self._days: dict[str, float | None] = {}  # "Nov 28" -> local midnight
        self._last: tuple[str, float | None] = ("", None)

    def epoch(self, stamp: str) -> float | None:
        if stamp == self._last[0]:
            return self._last[1]
        when = self._syslog(stamp) if stamp[3:4] == " " else self._iso(stamp)
        self._last = (stamp, when)
        return when

    def _syslog(self, stamp: str) -> float | None:
        key = stamp[:6]
        if key in self._days:
            day = self._days[key]
        elif stamp[:3] in _MONTHS:  # only real months are cached: at most 12 * 40 keys
            day = self._days[key] = self._day(_MONTHS[stamp[:3]], int(stamp[4:6]))
        else:
            return None
        hh, mm, ss = int(stamp[7:9]), int(stamp[10:12]), int(stamp[13:15])
        if day is None or hh > 23 or ss > 60:
            return None
        return day + hh * 3600 + mm * 60 + ss

    def _day(self, month: int, day: int) -> float | None:
        """Epoch of local midnight on month/day in the latest year not after ``now`` + 1 day."""
        year = gmtime(self.now + self.offset + _DAY).tm_year
        for candidate in range(year, year - 9, -1):
            try:
                midnight = datetime(candidate, month, day, tzinfo=UTC).timestamp() - self.offset
            except ValueError:  # no such day (Feb 29, Nov 31, day 0) this year
                continue
            if midnight <= self.now + _DAY:
                return float(midnight)
        return None

    def _iso(self, stamp: str) -> float | None:
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if when.tzinfo is None:
            return timegm(when.timetuple()) + when.microsecond / 1e6 - self.offset
        return when.timestamp()


def parse_line(line: str, clock: LogClock) -> Delivery | None:
    """The delivery on ``line`` (without its newline), or ``None`` if it is not one."""
    if " status=" not in line:
        return None
    match = _LINE.fullmatch(line.rstrip("\r"))
    if match is None or not is_queue_id(match["qid"]):
        return None
    stamp = match["ts"]
    when = None if stamp is None else clock.epoch(stamp)
    if when is None:
        return None
    fields = match["fields"]
    delays, dsn, tls = None, "", ""
    if fields:
        known = _fields(fields)
        if known is None:
            return None
        delays, dsn, tls = known
    qid, status, to, relay, reason, note, program = match.group(
        "qid", "status", "to", "relay", "reason", "note", "prog"
    )
    return Delivery(
        when, qid, status, to or "", relay or "", delays, dsn, reason or note or "", program, tls
    )


def _fields(text: str) -> tuple[tuple[float, float, float, float] | None, str, str] | None:
    """``delays``, ``dsn`` and ``tls`` from the fields between relay and status; ``None`` if a
    known field is malformed. Unknown fields (and ``delay``, ``conn_use``) are skipped."""
    ordered = _ORDERED.fullmatch(text)
    if ordered is not None:
        a, b, c, d, tls, dsn = ordered.groups()
        if tls is not None and _TLS.fullmatch(tls) is None:
            return None
        delays = None if a is None else (float(a), float(b), float(c), float(d))
        return delays, dsn or "", tls or ""
    delays, dsn, tls = None, "", ""
    for field in text[:-2].split(", "):
        name, _, value = field.partition("=")
        if name == "delays":
            parts = _DELAYS.fullmatch(value)
            if parts is None:
                return None
            a, b, c, d = map(float, parts.groups())
            delays = (a, b, c, d)
        elif name == "dsn":
            if _DSN.fullmatch(value) is None:
                return None
            dsn = value
        elif name == "tls":
            if _TLS.fullmatch(value) is None:
                return None
            tls = value
        elif name == "delay" and _DELAY.fullmatch(value) is None:
            return None
    return delays, dsn, tls


def is_status_line(line: str) -> bool:
    """True for a line that looks like a Postfix status line (``QUEUE_ID: ..., status=``),
    whether or not ``parse_line`` could read it: the ones it could not are format drift."""
    return " status=" in line and _STATUS_LINE.search(line) is not None


def line_time(line: str, clock: LogClock) -> float | None:
    """The time stamped on any log line (after a compose prefix), or ``None``."""
    match = _TIMESTAMP.match(line)
    return None if match is None else clock.epoch(match.group(1))


MAX_EXAMPLES = 3  # unreadable lines kept as examples
EXAMPLE_CHARS = 300  # of each


class LineReader:
    """Splits a byte stream into lines and parses each one.

    ``lines`` counts the lines seen, ``malformed`` the status lines that could not be read
    (``is_status_line`` but no ``Delivery``: another format, no time stamp, damaged; or
    longer than ``MAX_LINE_BYTES``), and ``examples`` keeps the first few of them, cut to
    ``EXAMPLE_CHARS`` (hostile text: escape it to show it). Memory is bounded by one chunk
    and one line.
    """

    def __init__(self, clock: LogClock) -> None:
        self.clock = clock
        self.lines = 0
        self.malformed = 0
        self.examples: list[str] = []
        self._rest = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> list[Delivery]:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._keep(chunk)
            return []
        if self._skipping:  # drop the rest of an over-long line, up to its newline
            first = chunk.find(b"\n")
            self._skipping = False
            body = chunk[first + 1 : end] if first < end else None
        else:
            body = self._rest + chunk[:end]
        self._rest = b""
        self._keep(chunk[end + 1 :])
        return [] if body is None else self._parse(body.decode("utf-8", "replace").split("\n"))

    def close(self) -> list[Delivery]:
        rest, self._rest = self._rest, b""
        if self._skipping or not rest:
            return []
        return self._parse([rest.decode("utf-8", "replace")])

    def _keep(self, part: bytes) -> None:
        if self._skipping:
            return
        self._rest += part
        if len(self._rest) > MAX_LINE_BYTES:
            start = self._rest[:EXAMPLE_CHARS].decode("utf-8", "replace")
            self._rest, self._skipping = b"", True
            self.lines += 1
            self.unreadable(f"{start}… (a line of more than {MAX_LINE_BYTES // 1024} KiB)")

    def _parse(self, lines: list[str]) -> list[Delivery]:
        out = []
        clock = self.clock
        for line in lines:
            delivery = parse_line(line, clock)
            if delivery is not None:
                out.append(delivery)
            elif " status=" in line and _STATUS_LINE.search(line) is not None:
                self.unreadable(line)
        self.lines += len(lines)
        return out

    def unreadable(self, line: str) -> None:
        """Count ``line`` as an unreadable status line (and keep it as an example)."""
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(line[:EXAMPLE_CHARS].rstrip("\r"))


# -- the analysis: bounded counters over the deliveries in the window ---------------------------

DELAY_STATUSES = ("sent", "deferred", "bounced")
MAIN_STATUSES = ("sent", "deferred", "bounced", "expired")
DELAY_PARTS = ("before queue manager", "in queue manager", "connection setup", "transmission")
# Histogram edges in seconds for the delay percentiles: p95 is reported as "at most EDGE".
DELAY_EDGES = (0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, _DAY, 5 * _DAY)
_FIRST_EDGE = DELAY_EDGES[0]
_SUSPENDED = "delivery temporarily suspended: "
MAX_KEY = 100  # characters of a relay or domain kept as a counter key
ATTEMPT_GAP = 60.0  # seconds: deferrals of one queue ID closer than this are one attempt


@dataclass(frozen=True, slots=True)
class DelayPart:
    mean: float
    p95: float  # upper edge of the histogram bucket holding the 95th percentile, or the max
    max: float


@dataclass(frozen=True, slots=True)
class QueueIdAttempts:
    """``attempts``: delivery runs that deferred (lines more than ``ATTEMPT_GAP`` apart);
    ``deferrals``: deferred lines (one per recipient per run)."""

    queue_id: str
    attempts: int
    deferrals: int
    first: float
    last: float
    status: str  # the last status logged in the window: deferred, sent, bounced, expired...
    reason_class: ReasonClass
    reason: str  # the last deferral reason, normalised


@dataclass(frozen=True, slots=True)
class LogAnalysis:
    start: float
    lines: int  # delivery lines in the window
    before_window: int
    first_seen: float | None
    last_seen: float | None
    statuses: list[tuple[str, int]]
    deferred_by_class: list[tuple[ReasonClass, int]]
    top_reasons: list[tuple[ReasonClass, str, int]]
    top_relays: list[tuple[str, int]]
    top_domains: list[tuple[str, int]]
    untried: int  # deferrals "delivery temporarily suspended": the destination was not tried
    delays: dict[str, tuple[int, list[DelayPart]]]  # status -> (lines, a/b/c/d)
    repeated: list[QueueIdAttempts]  # queue IDs deferred in 2+ attempts, most attempts first
    repeated_total: int  # how many there were (``repeated`` holds at most ``max_rows``)
    deferred_ids: int  # exact unless ``id_floor`` (then an estimate from above)
    outcomes: dict[str, int]  # deferred queue IDs by their last status in the window
    id_floor: int  # 0, or: IDs with at most this many attempts were dropped (memory cap)
    tls: list[tuple[str, int]]  # the most frequent tls= values (Postfix >= 3.11)


class _Delays:
    __slots__ = ("count", "hist", "max", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = [0.0] * 4
        self.max = [0.0] * 4
        self.hist = [[0] * (len(DELAY_EDGES) + 1) for _ in range(4)]

    def add(self, delays: tuple[float, float, float, float]) -> None:
        self.count += 1
        total, top, hist = self.sum, self.max, self.hist
        for i, value in enumerate(delays):
            total[i] += value
            if value > top[i]:
                top[i] = value
            # Most delays are tiny: skip the search for the first bucket.
            hist[i][0 if value <= _FIRST_EDGE else bisect_left(DELAY_EDGES, value)] += 1

    def parts(self) -> list[DelayPart]:
        return [DelayPart(self.sum[i] / self.count, self._p95(i), self.max[i]) for i in range(4)]

    def _p95(self, i: int) -> float:
        need, seen = 0.95 * self.count, 0
        for edge, n in zip((*DELAY_EDGES, float("inf")), self.hist[i], strict=True):
            seen += n
            if seen >= need:
                return min(float(edge), self.max[i])
        return self.max[i]


class _Id:
    __slots__ = ("attempts", "cls", "deferrals", "first", "last", "queue_id", "reason", "status")

    def __init__(self, queue_id: str, when: float) -> None:
        self.queue_id, self.first, self.last = queue_id, when, when
        self.attempts, self.deferrals = 0, 0
        self.status, self.cls, self.reason = "deferred", ReasonClass.other, ""

    def defer(self, when: float, cls: ReasonClass, reason: str) -> None:
        if self.deferrals == 0 or when - self.last > ATTEMPT_GAP:
            self.attempts += 1
        self.deferrals += 1
        self.last, self.status, self.cls, self.reason = when, "deferred", cls, reason

    def row(self) -> QueueIdAttempts:
        return QueueIdAttempts(
            self.queue_id,
            self.attempts,
            self.deferrals,
            self.first,
            self.last,
            self.status,
            self.cls,
            self.reason,
        )


class LogAnalyser:
    """Feed deliveries in log order with ``add``; ``build`` any time. Memory is bounded.

    Text-keyed counters hold at most ``max_keys`` keys (then ``(other)``). Queue IDs are
    tracked only once deferred, at most ``max_ids`` of them (about 250 bytes each): when full,
    the IDs with the fewest attempts (at most the median) are dropped and ``id_floor`` says
    so; an ID deferred again later starts counting afresh.
    """

    def __init__(
        self, start: float, *, top_n: int = 10, max_keys: int = 10_000, max_ids: int = 100_000
    ) -> None:
        self.start, self.top_n, self.max_ids = start, top_n, max_ids
        self.lines = self.before = self.untried = 0
        self.first: float | None = None
        self.last: float | None = None
        self._statuses = BoundedCounter(64)
        self._classes: dict[ReasonClass, int] = {}
        self._reasons = BoundedCounter(max_keys)
        self._relays = BoundedCounter(max_keys)
        self._domains = BoundedCounter(max_keys)
        self._tls = BoundedCounter(max_keys)
        self._delays = {status: _Delays() for status in DELAY_STATUSES}
        self._ids: dict[str, _Id] = {}
        self._id_floor = 0
        self._ids_added = 0  # distinct deferred IDs; more if dropped IDs were deferred again

    def add(self, d: Delivery) -> None:
        if d.when < self.start:
            self.before += 1
            return
        self.lines += 1
        if self.first is None:
            self.first = d.when
        self.last = d.when
        self._statuses.add(d.status)
        delays = self._delays.get(d.status)
        if delays is not None and d.delays is not None:
            delays.add(d.delays)
        if d.tls:
            self._tls.add(d.tls[:MAX_KEY])
        if d.status == "deferred":
            self._deferred(d)
        else:
            tracked = self._ids.get(d.queue_id)
            if tracked is not None:
                tracked.status, tracked.last = d.status, d.when

    def _deferred(self, d: Delivery) -> None:
        cls, reason = analyse(d.reason)
        self._classes[cls] = self._classes.get(cls, 0) + 1
        self._reasons.add(cls + " " + reason)
        self._relays.add(d.relay[:MAX_KEY] or "none")
        self._domains.add(domain_of(d.recipient)[:MAX_KEY])
        if d.reason.startswith(_SUSPENDED):
            self.untried += 1
        tracked = self._ids.get(d.queue_id)
        if tracked is None:
            if len(self._ids) >= self.max_ids:
                self._prune()
            tracked = self._ids[d.queue_id] = _Id(d.queue_id, d.when)
            self._ids_added += 1
        tracked.defer(d.when, cls, reason)

    def _prune(self) -> None:
        counts = sorted(t.attempts for t in self._ids.values())
        floor = counts[len(counts) // 2]
        self._ids = {k: t for k, t in self._ids.items() if t.attempts > floor}
        self._id_floor = max(self._id_floor, floor)

    def build(self, max_rows: int = 5_000) -> LogAnalysis:
        repeated = sorted(
            (t for t in self._ids.values() if t.attempts > 1),
            key=lambda t: (-t.attempts, -t.deferrals),  # stable: ties in order of first deferral
        )
        outcomes: dict[str, int] = {}
        for tracked in self._ids.values():
            outcomes[tracked.status] = outcomes.get(tracked.status, 0) + 1
        return LogAnalysis(
            start=self.start,
            lines=self.lines,
            before_window=self.before,
            first_seen=self.first,
            last_seen=self.last,
            statuses=self._status_list(),
            deferred_by_class=sorted(self._classes.items(), key=lambda kv: (-kv[1], kv[0].value)),
            top_reasons=[
                (ReasonClass(key.split(" ", 1)[0]), key.split(" ", 1)[1], n)
                for key, n in self._reasons.top(self.top_n)
                if key != OTHER_KEY
            ],
            top_relays=self._relays.top(self.top_n),
            top_domains=self._domains.top(self.top_n),
            untried=self.untried,
            delays={s: (d.count, d.parts()) for s, d in self._delays.items() if d.count},
            repeated=[t.row() for t in repeated[:max_rows]],
            repeated_total=len(repeated),
            deferred_ids=self._ids_added,
            outcomes=outcomes,
            id_floor=self._id_floor,
            tls=self._tls.top(self.top_n),
        )

    def _status_list(self) -> list[tuple[str, int]]:
        counts = dict(self._statuses.top(64))
        main = [(s, counts.pop(s, 0)) for s in MAIN_STATUSES]
        return main + sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
