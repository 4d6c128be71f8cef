"""``/mailq summary all`` or ``GROUP``: every selected host read at once, with a cap.

Hosts are read concurrently, at most ``FLEET_CONCURRENCY`` at a time (each read is one
``postconf`` and one streamed ``postqueue -j``). A hung host holds its place until its own
time limit, so the cap sits above a usual fleet: with a site down, healthy hosts must not
wait a whole time limit behind the hung ones. (Connections stay open between reads anyway,
and the work is CPU-bound, so a lower cap would save nothing.) A host that fails is
reported with its error, shortened; the others still report. The result is ordered worst
first: failed hosts, then by deferred messages, then by the age of the oldest message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import MailqbotError
from bot.inventory import Host
from bot.postfix.qshape import BUCKETS
from bot.postfix.reader import Progress, read_host, shorten
from bot.postfix.spool import Expiry, first_expiry
from bot.postfix.summary import QueueSummary
from bot.postfix.summary_brief import BriefSummaryBuilder
from bot.remote.audited import Remote

log = logging.getLogger(__name__)

FLEET_CONCURRENCY = 256
ERROR_CHARS = 140
HOST_KEYS = 1_000  # distinct keys per counter per host: the fleet view shows only top ones


@dataclass(frozen=True, slots=True)
class HostLine:
    """One host's row: its summary, or the error that stopped it."""

    host: str
    summary: QueueSummary | None
    expiry: Expiry | None
    error: str | None  # shortened, for the message
    error_detail: str | None  # the whole message, for the attached file
    elapsed: float

    @property
    def deferred(self) -> int:
        return self.summary.queues["deferred"].messages if self.summary else 0

    @property
    def messages(self) -> int:
        return self.summary.total_messages if self.summary else 0

    @property
    def top_class(self) -> str:
        if self.summary is None or not self.summary.deferred_by_class:
            return ""
        return self.summary.deferred_by_class[0].reason_class.label

    def oldest_age(self, now: float) -> float | None:
        if self.summary is None or self.summary.oldest is None:
            return None
        return now - self.summary.oldest.arrival_time

    def worst_key(self, now: float) -> tuple[int, int, float, str]:
        return (self.error is None, -self.deferred, -(self.oldest_age(now) or 0.0), self.host)


@dataclass(frozen=True, slots=True)
class ClassTotal:
    label: str
    messages: int
    recipients: int
    hosts: int


@dataclass(frozen=True, slots=True)
class FleetTotals:
    hosts: int
    failed: int
    messages: int
    recipients: int
    bytes: int
    deferred: int
    queues: dict[str, int]
    classes: list[ClassTotal]
    deferred_ages: tuple[int, ...]  # deferred recipients per qshape column, T first
    first_expiry: tuple[str, Expiry] | None


def totals(lines: Sequence[HostLine]) -> FleetTotals:
    ok = [line for line in lines if line.summary is not None]
    summaries = [line.summary for line in ok if line.summary is not None]
    queues: dict[str, int] = {}
    classes: dict[str, list[int]] = {}
    ages = [0] * (BUCKETS + 1)
    for s in summaries:
        for name, counts in s.queues.items():
            queues[name] = queues.get(name, 0) + counts.messages
        for g in s.deferred_by_class:
            row = classes.setdefault(g.reason_class.label, [0, 0, 0])
            row[0] += g.messages
            row[1] += g.recipients
            row[2] += 1
        ages = [a + b for a, b in zip(ages, s.deferred_shape.total.counts, strict=True)]
    expiries = [(line.host, line.expiry) for line in ok if line.expiry is not None]
    return FleetTotals(
        hosts=len(lines),
        failed=len(lines) - len(ok),
        messages=sum(s.total_messages for s in summaries),
        recipients=sum(s.total_recipients for s in summaries),
        bytes=sum(s.total_bytes for s in summaries),
        deferred=queues.get("deferred", 0),
        queues=queues,
        classes=sorted(
            (ClassTotal(label, *row) for label, row in classes.items()),
            key=lambda c: (-c.recipients, -c.messages, c.label),
        ),
        deferred_ages=tuple(ages),
        first_expiry=min(expiries, key=lambda pair: (pair[1].at, pair[0]), default=None),
    )


@dataclass
class _Progress:
    total: int
    progress: Progress
    done: int = 0

    async def one_more(self) -> None:
        self.done += 1
        await self.progress(f"{self.done:,}/{self.total:,} hosts read…")


@dataclass
class FleetReader:
    """Reads many hosts with one executor, at most ``concurrency`` at once."""

    remote: Remote
    now: float
    progress: Progress
    concurrency: int = FLEET_CONCURRENCY

    async def read(self, hosts: Sequence[Host]) -> list[HostLine]:
        """Every host's line, worst first; the remote records go to ``self.remote``."""
        quiet = self.remote.quiet()
        gate = asyncio.Semaphore(self.concurrency)
        counter = _Progress(len(hosts), self.progress)
        await self.progress(f"0/{len(hosts):,} hosts read…")
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._gated(quiet, host, gate, counter)) for host in hosts]
        lines = [task.result() for task in tasks]
        return sorted(lines, key=lambda line: line.worst_key(self.now))

    async def _gated(
        self, remote: Remote, host: Host, gate: asyncio.Semaphore, counter: _Progress
    ) -> HostLine:
        async with gate:
            line = await self._one(remote, host)
        await counter.one_more()
        return line

    async def _one(self, remote: Remote, host: Host) -> HostLine:
        started = time.monotonic()
        builder = BriefSummaryBuilder(self.now, max_keys=HOST_KEYS)
        try:
            reading = await read_host(remote, host, self.now, builder=builder)
        except MailqbotError as exc:
            return _failed(host, exc.user_message, started)
        except Exception:
            log.exception("reading %s failed unexpectedly", host.name)
            return _failed(host, "unexpected error in mailqbot; see its log", started)
        summary, settings = reading.summary, reading.settings
        expiry = first_expiry(
            summary.oldest_deferred.regular, summary.oldest_deferred.bounce, settings
        )
        return HostLine(host.name, summary, expiry, None, None, time.monotonic() - started)


def _failed(host: Host, message: str, started: float) -> HostLine:
    short = shorten(message, ERROR_CHARS)
    return HostLine(host.name, None, None, short, message, time.monotonic() - started)


SHOWN_HOSTS = 15  # host rows in the message; the attached file has them all


@dataclass(frozen=True)
class FleetSummary:
    """What ``summary all`` / ``summary GROUP`` shows."""

    target: str
    now: float
    lines: list[HostLine]  # worst first
    totals: FleetTotals
    elapsed: float
    shown_hosts: int = SHOWN_HOSTS
    kind: str = "fleet"

    @property
    def shown(self) -> list[HostLine]:
        return self.lines[: self.shown_hosts]

    @property
    def failures(self) -> list[HostLine]:
        return [line for line in self.lines if line.error is not None]

    @property
    def needs_file(self) -> bool:
        return len(self.lines) > self.shown_hosts or len(self.failures) > FAILURES_SHOWN

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(self.now))
        return f"mailq-summary-{self.target}-{stamp}.txt"

    @property
    def file_title(self) -> str:
        return f"Queue summary of {self.totals.hosts:,} hosts ({self.target}), every host"


FAILURES_SHOWN = 10  # failed hosts named with their error in the message
