"""qshape(1)'s table, counted exactly as Postfix's ``qshape`` counts, from ``postqueue -j``.

qshape (``auxiliary/qshape/qshape.pl``) reads the queue files itself; this module gets the
same numbers from the parsed listing, so a summary can be checked against ``qshape
deferred`` on the host. The rules, taken from qshape's source:

- One count per recipient address (``qshape -s``: one per message, for the sender), in
  the row of its domain and in ``TOTAL``; the ``T`` column is the row's total.
- Domain: the address lower-cased (ASCII letters only, as Perl's ``lc`` on bytes), then
  ``""`` becomes ``MAILER-DAEMON``, everything up to the last ``@`` is removed (an address
  without ``@`` is its own "domain"), ``..`` becomes ``.``, and one leading and one
  trailing dot are dropped. ``postqueue`` prints the null address as ``MAILER-DAEMON``,
  which therefore also counts as ``MAILER-DAEMON``.
- Age: integer seconds ``now - arrival_time`` (``now`` rounded down, as Perl's ``time``).
  Columns hold ages ``[0, 5)``, ``[5, 10)``, ``[10, 20)`` ... ``[640, 1280)`` minutes and
  ``1280+``; each column is headed by its upper edge, as in qshape. A message from the
  future (clock skew) is in the first column.
- Rows: by total, largest first, then shorter domain first (qshape), then by name (qshape
  leaves that order to Perl's hash order; here it is fixed).

Memory is bounded: at most ``max_keys`` domains get a row; later new domains are counted
under ``(other)`` (their counts stay in ``TOTAL``). Known differences from qshape, both
rare: showq prints a recipient listed twice in one message (after alias expansion) once
when it has a deferral reason, and replaces unprintable characters with ``?``.
"""

from __future__ import annotations

import heapq
import math
import re
from bisect import bisect_right
from dataclasses import dataclass

OTHER_ROW = "(other)"
NULL_ADDRESS = "MAILER-DAEMON"
TICK_MINUTES = 5
BUCKETS = 10  # qshape's default -b
# Upper edges in seconds of every column but the last: 5, 10, 20 ... 1280 minutes.
EDGES_SECONDS = tuple(60 * TICK_MINUTES * 2**i for i in range(BUCKETS - 1))
HEADERS = ("T", *(str(e // 60) for e in EDGES_SECONDS), f"{EDGES_SECONDS[-1] // 60}+")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Perl's ``s/.*\@//`` and ``s/^\.?(.+?)\.?$/$1/`` on text that may hold newlines, written so
# that no search starts again inside a line that already failed (which was quadratic).
_UP_TO_LAST_AT = re.compile(r"^.*@", re.MULTILINE)
_DOUBLE_DOT = re.compile(r"\.\.")
_EDGE_DOTS = re.compile(r"\.?(.+?)\.?")


def qshape_domain(address: str) -> str:
    """The row qshape counts ``address`` in (see the module doc)."""
    if address == "" or address == NULL_ADDRESS:
        return NULL_ADDRESS
    if "\n" in address:  # where Perl's and the fast path's ideas of ``.`` differ
        return _slow_domain(address)
    domain = address.rpartition("@")[2]
    domain = domain.lower() if domain.isascii() else domain.translate(_ASCII_LOWER)
    if domain and domain[0] != "." and domain[-1] != "." and ".." not in domain:
        return domain
    return _dots(domain)


def _slow_domain(address: str) -> str:
    return _dots(_UP_TO_LAST_AT.sub("", address.translate(_ASCII_LOWER), count=1))


def _dots(domain: str) -> str:
    """``..`` folded, then one dot cut from each end of the line that ``$`` ends (the last,
    or the one before a final newline): the only place the Perl pattern can match."""
    domain = _DOUBLE_DOT.sub(".", domain)
    end = len(domain) - 1 if domain.endswith("\n") else len(domain)
    start = domain.rfind("\n", 0, end) + 1
    match = _EDGE_DOTS.fullmatch(domain, start, end)
    return domain if match is None else domain[:start] + match.group(1) + domain[end:]


def qshape_bucket(age_seconds: int) -> int:
    """qshape's column (0 = under 5 minutes ... 9 = 1280 minutes and more), by its formula."""
    minutes = age_seconds / (60 * TICK_MINUTES)
    if minutes < 1:
        return 0
    return min(1 + int(math.log(minutes) / math.log(2)), BUCKETS - 1)


def bucket_of(age_seconds: int) -> int:
    """The same column as ``qshape_bucket`` for whole seconds, without floating point."""
    return bisect_right(EDGES_SECONDS, age_seconds)


@dataclass(frozen=True, slots=True)
class ShapeRow:
    domain: str
    counts: tuple[int, ...]  # T, then one count per column

    @property
    def total(self) -> int:
        return self.counts[0]


@dataclass(frozen=True, slots=True)
class QueueShape:
    """One qshape table: ``TOTAL`` and the largest ``rows``; ``domains`` rows in all."""

    queue_name: str
    counting: str  # "recipients" or "senders"
    total: ShapeRow
    rows: list[ShapeRow]
    domains: int
    capped: bool  # some domains were counted under (other)

    @property
    def headers(self) -> tuple[str, ...]:
        return HEADERS


class ShapeCounter:
    """Per-domain age-column counts for at most ``max_keys`` domains (plus ``(other)``).

    The caller gives each message's column (``bucket_of(floor(now) - arrival_time)``).
    """

    __slots__ = ("_counts", "_max_keys", "_total", "capped")

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._counts: dict[str, list[int]] = {}
        self._total = [0] * (BUCKETS + 1)
        self.capped = False

    def add(self, column: int, domain: str, amount: int = 1) -> None:
        """Count ``amount`` addresses of ``domain`` in ``column`` (0 = under 5 minutes)."""
        column += 1
        row = self._counts.get(domain)
        if row is None:
            row = self._new_row(domain)
        row[0] += amount
        row[column] += amount
        self._total[0] += amount
        self._total[column] += amount

    def add_total(self, column: int, amount: int) -> None:
        """Count ``amount`` addresses in ``column`` in ``TOTAL`` only (no domain row)."""
        self._total[0] += amount
        self._total[column + 1] += amount

    def _new_row(self, domain: str) -> list[int]:
        if len(self._counts) >= self._max_keys:
            self.capped = True
            domain = OTHER_ROW
            if domain in self._counts:
                return self._counts[domain]
        row = self._counts[domain] = [0] * (BUCKETS + 1)
        return row

    def __len__(self) -> int:
        return len(self._counts)

    def build(self, queue_name: str, counting: str, top: int) -> QueueShape:
        rows = (
            heapq.nsmallest(
                top, self._counts.items(), key=lambda item: (-item[1][0], len(item[0]), item[0])
            )
            if top > 0 and self._counts
            else []  # what nsmallest gives, at once (the fleet's rows)
        )
        return QueueShape(
            queue_name=queue_name,
            counting=counting,
            total=ShapeRow("TOTAL", tuple(self._total)),
            rows=[ShapeRow(domain, tuple(counts)) for domain, counts in rows],
            domains=len(self._counts),
            capped=self.capped,
        )


def parse_qshape(text: str) -> dict[str, tuple[int, ...]]:
    """qshape's printed table as ``{domain: (T, column counts...)}`` (tests and benchmarks).

    qshape truncates a domain longer than its column to ``+`` and the tail; such rows are
    kept under that shortened name.
    """
    table: dict[str, tuple[int, ...]] = {}
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return table
    if tuple(lines[0].split()) != HEADERS:
        raise ValueError(f"not qshape's default columns: {lines[0].strip()!r}")
    for line in lines[1:]:
        words = line.split()
        counts = tuple(int(w) for w in words[-len(HEADERS) :])
        table[" ".join(words[: -len(HEADERS)])] = counts
    return table


def shape_table(shape: QueueShape, *, rows: int | None = None) -> dict[str, tuple[int, ...]]:
    """A ``QueueShape`` in ``parse_qshape``'s form, for comparing with qshape's output."""
    chosen = shape.rows if rows is None else shape.rows[:rows]
    table = {row.domain: row.counts for row in chosen}
    table["TOTAL"] = shape.total.counts
    return table
