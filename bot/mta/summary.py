"""A queue summary built in one pass with flat memory.

``SummaryBuilder.add`` only updates counters: nothing per message is kept, and every
counter keyed by text (reason, domain, sender) holds at most ``max_keys`` distinct keys;
later new keys are counted under ``(other)``. So memory depends on the variety of the
queue, capped, never on its length.

Counting rules:

- ``queues`` always lists active, incoming, deferred and hold (zeros included), then any
  other queue seen, in Postfix's order.
- ``deferred_by_class`` looks only at the deferred queue, per recipient: a recipient
  without a reason counts as ``other`` under ``(no reason recorded)``. A message counts
  once in each class that any of its recipients fall in; recipients count one by one.
  ``top_reasons`` are normalised reasons and ``top_domains`` recipient domains, both
  counted in recipients.
- ``top_recipient_domains`` counts recipients in every queue; ``top_senders`` and
  ``top_sender_domains`` count messages in every queue. The null sender (Postfix shows
  ``MAILER-DAEMON``) is ``<>``, and so is its domain. An address without ``@`` has the
  domain ``(none)``. Domains are lower-cased; addresses are kept as printed.
- ``age_buckets`` follow qshape(1): under 5 minutes, then doubling edges up to 1280
  minutes, then ``1280m+``. Age is ``now - arrival_time``; a message from the future
  (clock skew) is age 0.
- ``oldest`` is the message with the smallest arrival time (ties: smallest queue ID).
  ``oldest_deferred`` holds, for the deferred queue, the smallest arrival time of a message
  with a sender (``regular``) and of one with the null sender (``bounce``): Postfix
  returns the first after ``maximal_queue_lifetime``, the second after
  ``bounce_queue_lifetime``.
- ``deferred_shape`` is ``qshape deferred`` and ``deferred_sender_shape`` is
  ``qshape -s deferred``, counted as qshape counts (``bot.mta.qshape``), with the
  ``shape_rows`` largest domains kept.
- Ties in every top list are broken by key, so summaries are deterministic.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass

from bot.mta.models import QUEUE_NAMES, QueueMessage
from bot.mta.qshape import QueueShape, ShapeCounter, qshape_domain
from bot.mta.reasons import ReasonClass, analyse

ALWAYS_SHOWN = ("active", "incoming", "deferred", "hold")
OTHER_KEY = "(other)"
NULL_SENDER = "<>"
NO_DOMAIN = "(none)"
NO_REASON = "(no reason recorded)"
AGE_EDGES_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
_AGE_LABELS = (
    "<5m",
    "5-10m",
    "10-20m",
    "20-40m",
    "40-80m",
    "80-160m",
    "160-320m",
    "320-640m",
    "640-1280m",
    "1280m+",
)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    messages: int
    recipients: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ClassGroup:
    reason_class: ReasonClass
    messages: int
    recipients: int
    top_reasons: list[tuple[str, int]]
    top_domains: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class AgeBucket:
    label: str
    messages: int


@dataclass(frozen=True, slots=True)
class OldestMessage:
    queue_id: str
    arrival_time: int
    sender: str
    queue_name: str


@dataclass(frozen=True, slots=True)
class OldestDeferred:
    """Arrival times of the oldest deferred messages, by the lifetime that applies."""

    regular: int | None  # sender present: maximal_queue_lifetime
    bounce: int | None  # null sender: bounce_queue_lifetime


@dataclass(frozen=True, slots=True)
class QueueSummary:
    now: float
    total_messages: int
    total_recipients: int
    total_bytes: int
    queues: dict[str, QueueCounts]
    deferred_by_class: list[ClassGroup]
    top_recipient_domains: list[tuple[str, int]]
    top_senders: list[tuple[str, int]]
    top_sender_domains: list[tuple[str, int]]
    age_buckets: list[AgeBucket]
    oldest: OldestMessage | None
    oldest_deferred: OldestDeferred
    deferred_shape: QueueShape
    deferred_sender_shape: QueueShape


class BoundedCounter:
    """A ``str -> int`` counter with at most ``max_keys`` keys plus ``(other)``."""

    __slots__ = ("_counts", "_max_keys")

    def __init__(self, max_keys: int) -> None:
        self._counts: dict[str, int] = {}
        self._max_keys = max_keys

    def add(self, key: str, amount: int = 1) -> None:
        counts = self._counts
        if key in counts:
            counts[key] += amount
        elif len(counts) < self._max_keys:
            counts[key] = amount
        else:
            counts[OTHER_KEY] = counts.get(OTHER_KEY, 0) + amount

    def __len__(self) -> int:
        return len(self._counts)

    def top(self, n: int) -> list[tuple[str, int]]:
        return heapq.nsmallest(n, self._counts.items(), key=lambda item: (-item[1], item[0]))


class _ClassCounts:
    __slots__ = ("domains", "messages", "reasons", "recipients")

    def __init__(self, max_keys: int) -> None:
        self.messages = 0
        self.recipients = 0
        self.reasons = BoundedCounter(max_keys)
        self.domains = BoundedCounter(max_keys)


def domain_of(address: str) -> str:
    """The lower-cased domain of an address as Postfix prints it."""
    _local, at, domain = address.rpartition("@")
    return domain.lower() if at and domain else NO_DOMAIN


def _sender_key(sender: str) -> str:
    return NULL_SENDER if sender in ("", "MAILER-DAEMON") else sender


_AGE_EDGES_SECONDS = tuple(60 * edge for edge in AGE_EDGES_MINUTES)
DOMAIN_MEMO = 4096  # distinct domain parts whose lower-cased forms are remembered


class SummaryBuilder:
    """Feed messages one by one with ``add``; ``build`` may be called at any time."""

    def __init__(
        self, now: float, top_n: int = 5, max_keys: int = 10_000, shape_rows: int = 200
    ) -> None:
        self.now = now
        self.top_n = top_n
        self.max_keys = max_keys
        self.shape_rows = shape_rows
        self._queues: dict[str, list[int]] = {name: [0, 0, 0] for name in ALWAYS_SHOWN}
        self._classes: dict[ReasonClass, _ClassCounts] = {}
        self._recipient_domains = BoundedCounter(max_keys)
        self._senders = BoundedCounter(max_keys)
        self._sender_domains = BoundedCounter(max_keys)
        self._ages = [0] * (len(AGE_EDGES_MINUTES) + 1)
        self._oldest: tuple[int, str, QueueMessage] | None = None
        self._oldest_regular: int | None = None
        self._oldest_bounce: int | None = None
        self._shape = ShapeCounter(max_keys)
        self._sender_shape = ShapeCounter(max_keys)
        self._domain_memo: dict[str, tuple[str, str]] = {}

    def add(self, message: QueueMessage) -> None:
        recipients = message.recipients
        counts = self._queues.setdefault(message.queue_name, [0, 0, 0])
        counts[0] += 1
        counts[1] += len(recipients)
        counts[2] += message.message_size
        sender = _sender_key(message.sender)
        sender_pair = self._domains_of(message.sender)
        self._senders.add(sender)
        self._sender_domains.add(NULL_SENDER if sender == NULL_SENDER else sender_pair[0])
        pairs = [self._domains_of(recipient.address) for recipient in recipients]
        add_domain = self._recipient_domains.add
        for domain, _ in pairs:
            add_domain(domain)
        # Integer arrival times and edges: the same column as qshape's whole-second clock.
        column = bisect_right(_AGE_EDGES_SECONDS, self.now - message.arrival_time)
        if message.queue_name == "deferred":
            self._add_deferred(message, pairs)
            self._add_shape(message.arrival_time, column, sender, sender_pair[1], pairs)
        self._ages[column] += 1
        self._note_oldest(message)

    def _domains_of(self, address: str) -> tuple[str, str]:
        """``domain_of`` and ``qshape_domain`` of ``address``, memoised by its domain part."""
        at = address.rfind("@")
        if at < 0 or "\n" in address:
            return domain_of(address), qshape_domain(address)
        part = address[at + 1 :]
        pair = self._domain_memo.get(part)
        if pair is None:
            pair = (part.lower() if part else NO_DOMAIN, qshape_domain(address))
            if len(self._domain_memo) < DOMAIN_MEMO:
                self._domain_memo[part] = pair
        return pair

    def _add_deferred(self, message: QueueMessage, pairs: list[tuple[str, str]]) -> None:
        seen: set[ReasonClass] = set()
        classes = self._classes
        for recipient, (domain, _) in zip(message.recipients, pairs, strict=True):
            reason_class, reason = analyse(recipient.delay_reason)
            group = classes.get(reason_class)
            if group is None:
                group = classes[reason_class] = _ClassCounts(self.max_keys)
            group.recipients += 1
            group.reasons.add(reason or NO_REASON)
            group.domains.add(domain)
            if reason_class not in seen:
                seen.add(reason_class)
                group.messages += 1

    def _add_shape(
        self,
        arrival: int,
        column: int,
        sender: str,
        sender_shape: str,
        pairs: list[tuple[str, str]],
    ) -> None:
        if pairs:  # qshape skips a queue file without recipients
            self._shape.add(column, pairs)
            self._sender_shape.add_one(column, sender_shape)
        if sender == NULL_SENDER:
            if self._oldest_bounce is None or arrival < self._oldest_bounce:
                self._oldest_bounce = arrival
        elif self._oldest_regular is None or arrival < self._oldest_regular:
            self._oldest_regular = arrival

    def _note_oldest(self, message: QueueMessage) -> None:
        oldest = self._oldest
        arrival = message.arrival_time
        if (
            oldest is None
            or arrival < oldest[0]
            or (arrival == oldest[0] and message.queue_id < oldest[1])
        ):
            self._oldest = (arrival, message.queue_id, message)

    def build(self) -> QueueSummary:
        order = [name for name in QUEUE_NAMES if name in self._queues]
        order += sorted(set(self._queues) - set(QUEUE_NAMES))
        queues = {name: QueueCounts(*self._queues[name]) for name in order}
        return QueueSummary(
            now=self.now,
            total_messages=sum(c.messages for c in queues.values()),
            total_recipients=sum(c.recipients for c in queues.values()),
            total_bytes=sum(c.bytes for c in queues.values()),
            queues=queues,
            deferred_by_class=self._class_groups(),
            top_recipient_domains=self._recipient_domains.top(self.top_n),
            top_senders=self._senders.top(self.top_n),
            top_sender_domains=self._sender_domains.top(self.top_n),
            age_buckets=[
                AgeBucket(label, n) for label, n in zip(_AGE_LABELS, self._ages, strict=True)
            ],
            oldest=self._oldest_message(),
            oldest_deferred=OldestDeferred(self._oldest_regular, self._oldest_bounce),
            deferred_shape=self._shape.build("deferred", "recipients", self.shape_rows),
            deferred_sender_shape=self._sender_shape.build("deferred", "senders", self.shape_rows),
        )

    def _class_groups(self) -> list[ClassGroup]:
        groups = [
            ClassGroup(
                reason_class=cls,
                messages=counts.messages,
                recipients=counts.recipients,
                top_reasons=counts.reasons.top(self.top_n),
                top_domains=counts.domains.top(self.top_n),
            )
            for cls, counts in self._classes.items()
        ]
        groups.sort(key=lambda g: (-g.recipients, -g.messages, g.reason_class.value))
        return groups

    def _oldest_message(self) -> OldestMessage | None:
        if self._oldest is None:
            return None
        message = self._oldest[2]
        return OldestMessage(
            message.queue_id, message.arrival_time, message.sender, message.queue_name
        )

    def counter_sizes(self) -> dict[str, int]:
        """Distinct keys held per counter: what memory depends on (for tests and metrics)."""
        sizes = {
            "queues": len(self._queues),
            "recipient_domains": len(self._recipient_domains),
            "senders": len(self._senders),
            "sender_domains": len(self._sender_domains),
            "shape_domains": len(self._shape),
            "shape_sender_domains": len(self._sender_shape),
        }
        for cls, counts in self._classes.items():
            sizes[f"{cls.value}.reasons"] = len(counts.reasons)
            sizes[f"{cls.value}.domains"] = len(counts.domains)
        return sizes
