"""What a queue summary holds (``QueueSummary`` and its parts) and the bounded counter.

``bot.postfix.summary`` builds these and re-exports every name; see its doc for the rules.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from bot.postfix.qshape import QueueShape
from bot.postfix.reasons import ReasonClass

ALWAYS_SHOWN = ("active", "incoming", "deferred", "hold")
OTHER_KEY = "(other)"
NULL_SENDER = "<>"
NO_DOMAIN = "(none)"
NO_REASON = "(no reason recorded)"
AGE_EDGES_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
AGE_LABELS = (
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
        if n <= 0 or not self._counts:  # what nsmallest gives, at once (the fleet's rows)
            return []
        return heapq.nsmallest(n, self._counts.items(), key=lambda item: (-item[1], item[0]))


class ClassCounts:
    """One reason class's counts while a summary is built."""

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


def sender_key(sender: str) -> str:
    return NULL_SENDER if sender in ("", "MAILER-DAEMON") else sender
