"""Prometheus ``/metrics``: what this process polls and runs, and what is open cluster-wide.

Served on its own listener (loopback unless configured otherwise), never on the Slack one.

Per host this process polls (its lease): ``mailqbot_host_up`` (1 after a good poll, 0 after
a failed one), ``mailqbot_last_poll_success_timestamp_seconds``, and the queue gauges:
messages per queue, deferred messages per reason class, the oldest message's age and the
spool size. A failed poll drops that host's queue gauges (a number that is no longer known
is not exported); a host whose lease moves to another process loses all its series here,
so summing over replicas counts every host once.

Counters (polls, poll errors, commands run) count what this process did since it started:
a scrape never scans the database. The only database reads are the cluster-wide gauges of
open incidents and unfinished plans: a small query over open rows, refreshed in the
background (``watch``) and served from memory, with the time of the last read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.monitor.courier import Counters
from bot.monitor.samples import Sample
from bot.stores import status

if TYPE_CHECKING:
    from aiohttp import web
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)
REFRESH_SECONDS = 30.0  # cluster-wide gauges are read from the database this often
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# No ``*_created`` series beside every counter (prometheus_client's switch is process-wide).
disable_created_metrics()  # type: ignore[no-untyped-call]


class _Cluster(Collector):
    """Open incidents and unfinished plans of all replicas, as last read (``Metrics.refresh``);
    nothing until the first read succeeded."""

    def __init__(self) -> None:
        self.read_at: float | None = None
        self.incidents: list[tuple[str, str, int]] = []
        self.plans: list[tuple[str, str, int]] = []

    def collect(self) -> Iterator[Metric]:
        if self.read_at is None:
            return
        yield _family(
            "mailqbot_incidents_open",
            "Open monitoring incidents by kind and severity (all replicas).",
            ["kind", "severity"],
            self.incidents,
        )
        yield _family(
            "mailqbot_action_plans_unfinished",
            "Action plans pending, approved or executing, by action and status (all replicas).",
            ["action", "status"],
            self.plans,
        )
        yield GaugeMetricFamily(
            "mailqbot_cluster_read_timestamp_seconds",
            "When the cluster-wide gauges (incidents, plans) were last read from the database.",
            value=self.read_at,
        )


class _AlertPosts(Collector):
    """What the alert courier did with Slack (``bot.monitor.courier.Counters``): nothing is
    dropped silently, so what went over a channel's budget is counted here."""

    KINDS = ("posted", "folded", "edits", "edits_coalesced", "failed")

    def __init__(self) -> None:
        self.counters: Counters | None = None

    def collect(self) -> Iterator[Metric]:
        if self.counters is None:
            return
        family = CounterMetricFamily(
            "mailqbot_alert_slack_calls",
            "Alert posts and edits of this process: posted; folded (over the channel's budget, "
            "carried by an edit of their root); edits made; edits coalesced into a later one; "
            "failed Slack calls.",
            labels=["kind"],
        )
        for kind in self.KINDS:
            family.add_metric([kind], getattr(self.counters, kind))
        yield family


def _family(
    name: str, doc: str, labels: list[str], rows: Iterable[tuple[str, str, int]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for a, b, value in rows:
        family.add_metric([a, b], value)
    return family


class Metrics:
    """One per process (``Services.metrics``): the monitor and the pipeline update it, the
    metrics listener renders it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.sessions = sessions
        self.registry = r = CollectorRegistry()
        self.up = Gauge(
            "mailqbot_host_up",
            "1 if the last poll of the host read its queue, 0 if it failed (hosts this "
            "process polls).",
            ["host"],
            registry=r,
        )
        self.last_success = Gauge(
            "mailqbot_last_poll_success_timestamp_seconds",
            "When the last good poll of the host started (Unix time; hosts this process polls).",
            ["host"],
            registry=r,
        )
        self.queue = Gauge(
            "mailqbot_queue_messages",
            "Messages per queue at the last good poll (absent after a failed one).",
            ["host", "queue"],
            registry=r,
        )
        self.deferred = Gauge(
            "mailqbot_deferred_messages",
            "Deferred messages per reason class at the last good poll (absent after a failed one).",
            ["host", "reason_class"],
            registry=r,
        )
        self.oldest = Gauge(
            "mailqbot_oldest_message_age_seconds",
            "Age of the oldest queued message at the last good poll; 0 when the queue is empty.",
            ["host"],
            registry=r,
        )
        self.spool = Gauge(
            "mailqbot_spool_bytes",
            "Size of the deferred spool at the last good poll (hosts with a spool rule).",
            ["host"],
            registry=r,
        )
        self.polls = Counter(
            "mailqbot_polls", "Polls by outcome (ok, error).", ["outcome"], registry=r
        )
        self.poll_errors = Counter(
            "mailqbot_poll_errors", "Failed polls per host.", ["host"], registry=r
        )
        self.poll_duration = Histogram(
            "mailqbot_poll_duration_seconds",
            "Time to read one host's queue (good and failed polls).",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.hosts = Gauge("mailqbot_hosts_leased", "Hosts this process polls.", registry=r)
        self.commands = Counter(
            "mailqbot_commands",
            "Commands run through the pipeline by this process, by command and outcome.",
            ["command", "outcome"],
            registry=r,
        )
        self.audit_failures = Counter(
            "mailqbot_audit_write_failures",
            "Runs whose record and audit event could not be written.",
            registry=r,
        )
        self._cluster = _Cluster()
        r.register(self._cluster)
        self._alert_posts = _AlertPosts()
        r.register(self._alert_posts)
        # host -> the gauges (and their label values) it has a series in
        self._series: dict[str, set[tuple[Gauge, tuple[str, ...]]]] = {}

    # -- the monitor --------------------------------------------------------------------

    def follow_alerts(self, counters: Counters) -> None:
        """Export what the monitor's alert courier counts."""
        self._alert_posts.counters = counters

    def observe(self, sample: Sample) -> None:
        """Record one poll: counters, duration, ``host_up``; the queue gauges of a good
        poll replace the host's previous ones, a failed poll drops them."""
        host = sample.host
        self.polls.labels("ok" if sample.ok else "error").inc()
        self.poll_duration.observe(sample.elapsed)
        self.up.labels(host).set(1 if sample.ok else 0)
        if not sample.ok:
            self.poll_errors.labels(host).inc()
            self._replace(host, {})
            return
        self.last_success.labels(host).set(sample.at)
        values: dict[tuple[Gauge, tuple[str, ...]], float] = {}
        values |= {(self.queue, (host, q)): n for q, n in sample.queues.items()}
        values |= {(self.deferred, (host, c)): n for c, n in sample.by_class.items()}
        values[(self.oldest, (host,))] = sample.oldest_age or 0
        if sample.spool_kib is not None:
            values[(self.spool, (host,))] = sample.spool_kib * 1024
        self._replace(host, values)

    def _replace(self, host: str, values: dict[tuple[Gauge, tuple[str, ...]], float]) -> None:
        series = self._series.setdefault(host, set())
        for gauge, labels in series - set(values):
            gauge.remove(*labels)
        for (gauge, labels), value in values.items():
            gauge.labels(*labels).set(value)
        self._series[host] = set(values)

    def forget(self, host: str) -> None:
        """Drop every series of ``host`` (its lease moved to another process)."""
        self._replace(host, {})
        del self._series[host]
        for gauge in (self.up, self.last_success):
            with contextlib.suppress(KeyError):
                gauge.remove(host)

    def leased(self, hosts: set[str]) -> None:
        self.hosts.set(len(hosts))
        for host in set(self._series) - hosts:
            self.forget(host)

    # -- the pipeline -------------------------------------------------------------------

    def command_ran(self, command: str, outcome: str) -> None:
        self.commands.labels(command, outcome).inc()

    # -- the cluster-wide gauges ----------------------------------------------------------

    async def refresh(self) -> None:
        """Read open incidents and unfinished plans (two small queries over open rows)."""
        if self.sessions is None:
            return
        async with self.sessions() as session:
            incidents = await status.open_incidents(session)
            plans = await status.unfinished_plans(session)
        self._cluster.incidents, self._cluster.plans = incidents, plans
        self._cluster.read_at = time.time()

    async def watch(self, stop: asyncio.Event, every: float = REFRESH_SECONDS) -> None:
        """``refresh`` every ``every`` seconds until ``stop`` (a failed read is logged; the
        gauges keep their last values, and their read time says how old they are)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("could not read open incidents and plans: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    # -- the listener -------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handler(self, _request: web.Request) -> web.Response:
        """Render what is in memory: no database read, no wait on polls. The render (tens
        of milliseconds for hundreds of hosts) runs in a thread, so the event loop (polls,
        Slack's acks) keeps its turns meanwhile."""
        body = await asyncio.to_thread(self.render)
        from aiohttp import web  # the listener's own library: not loaded by the console

        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
