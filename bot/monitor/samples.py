"""One poll of one host through the queue reader, and what is kept of it.

A poll is the same read as ``/mailq summary HOST`` (``bot.postfix.reader.read_host`` over the one
SSH executor): ``postconf`` then ``postqueue -j`` streamed into a summary, plus ``du`` when a
spool rule is on. What is kept is small: counts per queue, deferred messages per reason
class, the oldest message's age, the spool size and the top reasons (for the alert). The
history of samples is in the database (``bot.stores.samples``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.errors import MailqbotError
from bot.inventory import Host
from bot.postfix.reader import HostReading, read_host, shorten
from bot.remote.audited import Remote

TOP_REASONS = 3


@dataclass(frozen=True)
class Sample:
    host: str
    at: float
    ok: bool
    elapsed: float
    error: str | None = None
    queues: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    oldest_age: int | None = None
    spool_kib: int | None = None
    # (reason class, normalised reason, recipients), largest first
    top_reasons: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def deferred(self) -> int:
        return self.queues.get("deferred", 0)


async def poll(remote: Remote, host: Host, now: float, disk: bool) -> Sample:
    """Read ``host``'s queue through the monitor's gateway (``Remote.discarding``: polls
    keep no audit records and change nothing); a failure is a sample too (``ok`` False,
    with the reason)."""
    started = time.monotonic()
    try:
        reading = await read_host(remote, host, now, disk=disk)
    except MailqbotError as exc:
        return Sample(
            host.name, now, False, time.monotonic() - started, shorten(exc.user_message, 300)
        )
    except OSError as exc:
        return Sample(host.name, now, False, time.monotonic() - started, shorten(str(exc), 300))
    return from_reading(host.name, now, reading, time.monotonic() - started)


def from_reading(host: str, at: float, reading: HostReading, elapsed: float) -> Sample:
    summary = reading.summary
    top = sorted(
        (
            (g.reason_class.value, reason, count)
            for g in summary.deferred_by_class
            for reason, count in g.top_reasons[:TOP_REASONS]
        ),
        key=lambda item: (-item[2], item[0], item[1]),
    )[:TOP_REASONS]
    oldest = summary.oldest
    disk = reading.disk
    return Sample(
        host=host,
        at=at,
        ok=True,
        elapsed=elapsed,
        queues={name: counts.messages for name, counts in summary.queues.items()},
        by_class={g.reason_class.value: g.messages for g in summary.deferred_by_class},
        oldest_age=max(0, int(at - oldest.arrival_time)) if oldest else None,
        spool_kib=disk.bytes // 1024 if disk is not None and disk.bytes is not None else None,
        top_reasons=top,
    )


def describe(sample: Sample) -> dict[str, Any]:
    """What an alert shows of the sample that triggered it."""
    return {
        "deferred": sample.deferred,
        "queues": dict(sample.queues),
        "by_class": dict(sorted(sample.by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
        "top_reasons": [list(t) for t in sample.top_reasons],
        "oldest_age": sample.oldest_age,
        "spool_kib": sample.spool_kib,
        "error": sample.error,
    }
