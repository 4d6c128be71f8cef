"""A queue summary built in one pass with flat memory.

``SummaryBuilder.add`` (a ``QueueMessage``) and ``add_fields`` (the fields
``PostqueueJsonParser.feed_into`` passes, no objects: the fast path) only update counters:
nothing per message is kept, and every counter keyed by text (reason, domain, sender) holds
at most ``max_keys`` distinct keys; later new keys are counted under ``(other)``. So memory
depends on the variety of the queue, capped, never on its length.

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
  ``qshape -s deferred``, counted as qshape counts (``bot.postfix.qshape``), with the
  ``shape_rows`` largest domains kept.
- Ties in every top list are broken by key, so summaries are deterministic.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping

from bot.postfix.models import QUEUE_NAMES, QueueMessage
from bot.postfix.qshape import ShapeCounter, qshape_domain
from bot.postfix.reasons import ReasonClass, analyse
from bot.postfix.summary_model import (
    AGE_EDGES_MINUTES,
    AGE_LABELS,
    ALWAYS_SHOWN,
    NO_DOMAIN,
    NO_REASON,
    NULL_SENDER,
    OTHER_KEY,
    AgeBucket,
    BoundedCounter,
    ClassCounts,
    ClassGroup,
    OldestDeferred,
    OldestMessage,
    QueueCounts,
    QueueSummary,
    domain_of,
    sender_key,
)

__all__ = [
    "AGE_EDGES_MINUTES",
    "ALWAYS_SHOWN",
    "NO_DOMAIN",
    "NO_REASON",
    "NULL_SENDER",
    "OTHER_KEY",
    "AgeBucket",
    "BoundedCounter",
    "ClassGroup",
    "OldestDeferred",
    "OldestMessage",
    "QueueCounts",
    "QueueSummary",
    "SummaryBuilder",
    "domain_of",
]


def _known(arrival: int) -> int | None:
    return None if arrival == _LATEST else arrival


AGE_EDGES_SECONDS = tuple(60 * edge for edge in AGE_EDGES_MINUTES)  # whole seconds, as qshape
DOMAIN_MEMO = 4096  # distinct domain parts whose lower-cased forms are remembered
RAW_KEYS = 16_384  # at most this many distinct raw keys (and max_keys) before a fold
_NO_SHAPE = -1  # the column of a key that is not counted in a qshape table
_LATEST = 2**63  # later than any arrival time


def _part(address: str) -> str:
    """The raw key of an address's domain: the text after its last ``@``, or, for an address
    without ``@`` or with a newline (whose domains depend on more than that), ``@`` and the
    whole address (no domain part holds an ``@``, so the two kinds never collide)."""
    at = address.rfind("@")
    return address[at + 1 :] if at >= 0 and "\n" not in address else "@" + address


class SummaryBuilder:
    """Feed messages one by one with ``add`` (or ``add_fields``); ``build`` at any time.

    The hot path only counts raw keys: ``(domain part, delay reason, qshape column)`` per
    recipient, ``(sender, column)`` per message, and the raw reason of each deferred message
    whose recipients share one. ``_fold`` turns them into the counters (normalising and
    classifying each distinct reason once) in the order the keys were first seen, so every
    counter, its ``max_keys`` cap included, ends as if it had been fed message by message.
    The raw dicts are folded whenever one holds ``max_keys`` (at most ``RAW_KEYS``) keys,
    so memory stays flat.

    Analysing reasons is the costly part of a fold. An async reader that must not hold the
    event loop folds before that, when ``fold_due``: it analyses ``pending_reasons`` in
    slices of its own and passes the results to ``fold``.
    """

    def __init__(
        self, now: float, top_n: int = 5, max_keys: int = 10_000, shape_rows: int = 200
    ) -> None:
        self.now = now
        self.top_n = top_n
        self.max_keys = max_keys
        self.shape_rows = shape_rows
        self._queues: dict[str, list[int]] = {name: [0, 0, 0] for name in ALWAYS_SHOWN}
        self._classes: dict[ReasonClass, ClassCounts] = {}
        self._recipient_domains = BoundedCounter(max_keys)
        self._senders = BoundedCounter(max_keys)
        self._sender_domains = BoundedCounter(max_keys)
        self._ages = [0] * (len(AGE_EDGES_MINUTES) + 1)
        self._oldest: tuple[int, str, str, str] | None = None  # arrival, ID, sender, queue
        self._oldest_arrival = _LATEST
        self._oldest_regular = _LATEST
        self._oldest_bounce = _LATEST
        self._shape = ShapeCounter(max_keys)
        self._sender_shape = ShapeCounter(max_keys)
        self._domain_memo: dict[str, tuple[str, str]] = {}
        self._recipient_keys: dict[tuple[str, str, int], int] = {}
        self._sender_keys: dict[tuple[str, int], int] = {}
        self._message_reasons: dict[str, int] = {}
        self._raw_keys = min(max_keys, RAW_KEYS)
        self._analysed: Mapping[str, tuple[ReasonClass, str]] = {}

    def add(self, message: QueueMessage) -> None:
        recipients = [
            {"address": r.address, "delay_reason": r.delay_reason} for r in message.recipients
        ]
        self.add_fields(
            message.queue_name,
            message.queue_id,
            message.arrival_time,
            message.message_size,
            message.sender,
            recipients,
        )

    def add_fields(
        self,
        queue_name: str,
        queue_id: str,
        arrival: int,
        size: int,
        sender: str,
        recipients: list[dict[str, str]],
        _forced_expire: bool = False,
    ) -> None:
        """Count one message given as ``PostqueueJsonParser.feed_into`` passes it."""
        # The hot path of a summary: _count_message and _deferred_message inlined.
        counts = self._queues.get(queue_name)
        if counts is None:
            counts = self._queues[queue_name] = [0, 0, 0]
        counts[0] += 1
        counts[1] += len(recipients)
        counts[2] += size
        column = bisect_right(AGE_EDGES_SECONDS, self.now - arrival)
        self._ages[column] += 1
        if arrival <= self._oldest_arrival:
            self._note_oldest(arrival, queue_id, sender, queue_name)
        keys = self._recipient_keys
        if queue_name != "deferred":
            for item in recipients:
                address = item["address"]
                at = address.rfind("@")
                part = address[at + 1 :] if at >= 0 and "\n" not in address else "@" + address
                key = (part, "", _NO_SHAPE)
                keys[key] = keys.get(key, 0) + 1
            sender_key = (sender, _NO_SHAPE)
        else:
            first, mixed = None, False
            for item in recipients:
                address = item["address"]
                at = address.rfind("@")
                part = address[at + 1 :] if at >= 0 and "\n" not in address else "@" + address
                reason = item.get("delay_reason", "")
                key = (part, reason, column)
                keys[key] = keys.get(key, 0) + 1
                if first is None:
                    first = reason
                elif reason != first:
                    mixed = True
            self._deferred_message(sender, arrival, recipients, first, mixed)
            # qshape skips a queue file without recipients
            sender_key = (sender, column if recipients else _NO_SHAPE)
        sender_keys = self._sender_keys
        sender_keys[sender_key] = sender_keys.get(sender_key, 0) + 1
        if len(keys) >= self._raw_keys or len(sender_keys) >= self._raw_keys:
            self._fold()

    def _deferred_message(
        self,
        sender: str,
        arrival: int,
        recipients: list[dict[str, str]],
        first: str | None,
        mixed: bool,
    ) -> None:
        if mixed:
            self._count_classes([item.get("delay_reason", "") for item in recipients])
        elif first is not None:
            self._message_reasons[first] = self._message_reasons.get(first, 0) + 1
        if sender == "" or sender == "MAILER-DAEMON":
            if arrival < self._oldest_bounce:
                self._oldest_bounce = arrival
        elif arrival < self._oldest_regular:
            self._oldest_regular = arrival

    def _count_classes(self, reasons: list[str]) -> None:
        """A message counts once in each class its recipients fall in."""
        for reason_class in {self._analyse(reason)[0] for reason in reasons}:
            self._class(reason_class).messages += 1

    def _class(self, reason_class: ReasonClass) -> ClassCounts:
        group = self._classes.get(reason_class)
        if group is None:
            group = self._classes[reason_class] = ClassCounts(self.max_keys)
        return group

    def _note_oldest(self, arrival: int, queue_id: str, sender: str, queue_name: str) -> None:
        oldest = self._oldest
        if oldest is None or arrival < oldest[0] or queue_id < oldest[1]:
            self._oldest = (arrival, queue_id, sender, queue_name)
            self._oldest_arrival = arrival

    def _domains_of(self, part: str) -> tuple[str, str]:
        """``domain_of`` and ``qshape_domain`` of the addresses with this ``_part``."""
        if part[:1] == "@":
            return domain_of(part[1:]), qshape_domain(part[1:])
        pair = self._domain_memo.get(part)
        if pair is None:
            pair = (part.lower() if part else NO_DOMAIN, qshape_domain("@" + part))
            if len(self._domain_memo) < DOMAIN_MEMO:
                self._domain_memo[part] = pair
        return pair

    def fold_due(self) -> bool:
        """The raw counts are half way to a fold (``add_fields`` folds when they are full).

        A reader that checks this after every 64 KiB of listing (at most ~1,900 new keys)
        never lets ``add_fields`` fold, with the default ``max_keys``."""
        half = self._raw_keys // 2
        return len(self._recipient_keys) > half or len(self._sender_keys) > half

    def pending_reasons(self) -> list[str]:
        """The distinct delay reasons the next fold analyses."""
        reasons = dict.fromkeys(self._message_reasons)
        for _part, reason, column in self._recipient_keys:
            if column != _NO_SHAPE:
                reasons[reason] = None
        return list(reasons)

    def fold(self, analysed: Mapping[str, tuple[ReasonClass, str]]) -> None:
        """Fold now, taking reasons' analyses from ``analysed`` (``pending_reasons``)."""
        self._analysed = analysed
        try:
            self._fold()
        finally:
            self._analysed = {}

    def _analyse(self, reason: str) -> tuple[ReasonClass, str]:
        found = self._analysed.get(reason)
        return analyse(reason) if found is None else found

    def _fold(self) -> None:
        """Move the raw counts into the counters, in the order their keys were first seen."""
        for reason, messages in self._message_reasons.items():
            self._class(self._analyse(reason)[0]).messages += messages
        for (part, reason, column), n in self._recipient_keys.items():
            domain, shape_domain = self._domains_of(part)
            self._recipient_domains.add(domain, n)
            if column != _NO_SHAPE:
                reason_class, normalised = self._analyse(reason)
                group = self._class(reason_class)
                group.recipients += n
                group.reasons.add(normalised or NO_REASON, n)
                group.domains.add(domain, n)
                self._shape.add(column, shape_domain, n)
        for (sender, column), n in self._sender_keys.items():
            key = sender_key(sender)
            domain, shape_domain = self._domains_of(_part(sender))
            self._senders.add(key, n)
            self._sender_domains.add(NULL_SENDER if key == NULL_SENDER else domain, n)
            if column != _NO_SHAPE:
                self._sender_shape.add(column, shape_domain, n)
        self._message_reasons, self._recipient_keys, self._sender_keys = {}, {}, {}

    def build(self) -> QueueSummary:
        self._fold()
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
                AgeBucket(label, n) for label, n in zip(AGE_LABELS, self._ages, strict=True)
            ],
            oldest=self._oldest_message(),
            oldest_deferred=OldestDeferred(
                _known(self._oldest_regular), _known(self._oldest_bounce)
            ),
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
        arrival, queue_id, sender, queue_name = self._oldest
        return OldestMessage(queue_id, arrival, sender, queue_name)

    def counter_sizes(self) -> dict[str, int]:
        """Distinct keys held per counter: what memory depends on (for tests and metrics)."""
        self._fold()
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
