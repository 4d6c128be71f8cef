"""Prometheus ``/metrics``: queue depth per host this process polls, polls, incidents,
commands and approvals.

Queue gauges are per process: each host is polled by one process, which exports it (and
drops its series when the lease moves away), so summing over replicas counts every host
once. Incidents, command runs and action plans are counted in the shared database when
scraped, so every replica reports the same cluster-wide numbers for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ActionPlan, CommandRun, Incident
from bot.monitor.samples import Sample


class _Database(Collector):
    """Counts read from the database just before each scrape (``refresh``)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, int]] = []
        self.plans: list[tuple[str, str, int]] = []
        self.incidents: list[tuple[str, str, int]] = []

    def collect(self) -> Iterator[Metric]:
        yield _family(
            "mailqbot_command_runs",
            "Commands run through the pipeline (all replicas), by command and outcome.",
            ["command", "outcome"],
            self.commands,
        )
        yield _family(
            "mailqbot_action_plans",
            "Action plans (approvals) by action and status (all replicas).",
            ["action", "status"],
            self.plans,
        )
        yield _family(
            "mailqbot_incidents_open",
            "Open monitoring incidents by kind and severity (all replicas).",
            ["kind", "severity"],
            self.incidents,
        )


def _family(
    name: str, doc: str, labels: list[str], rows: Iterable[tuple[str, str, int]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for a, b, value in rows:
        family.add_metric([a, b], value)
    return family


class Metrics:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue = Gauge(
            "mailqbot_queue_messages", "Messages per queue", ["host", "queue"], registry=r
        )
        self.deferred = Gauge(
            "mailqbot_deferred_messages",
            "Deferred messages per reason class",
            ["host", "reason_class"],
            registry=r,
        )
        self.polls = Counter("mailqbot_polls", "Polls by outcome", ["outcome"], registry=r)
        self.poll_errors = Counter(
            "mailqbot_poll_errors", "Failed polls per host", ["host"], registry=r
        )
        self.poll_seconds = Histogram(
            "mailqbot_poll_seconds", "Time to read one host's queue", registry=r
        )
        self.hosts = Gauge("mailqbot_hosts_leased", "Hosts this process polls", registry=r)
        self._db = _Database()
        r.register(self._db)
        # host -> (series kind, label) -> its gauge child, kept between polls
        self._series: dict[str, dict[tuple[str, str], Any]] = {}

    def observe(self, sample: Sample) -> None:
        self.polls.labels("ok" if sample.ok else "error").inc()
        self.poll_seconds.observe(sample.elapsed)
        if not sample.ok:
            self.poll_errors.labels(sample.host).inc()
            return
        values = {("q", q): n for q, n in sample.queues.items()}
        values |= {("c", c): n for c, n in sample.by_class.items()}
        series = self._series.setdefault(sample.host, {})
        for key in set(series) - set(values):  # a class no longer deferred: drop its series
            self._gauge(key[0]).remove(sample.host, key[1])
            del series[key]
        for key, count in values.items():
            child = series.get(key)
            if child is None:
                child = series[key] = self._gauge(key[0]).labels(sample.host, key[1])
            child.set(count)

    def _gauge(self, kind: str) -> Gauge:
        return self.queue if kind == "q" else self.deferred

    def forget(self, host: str) -> None:
        """Drop a host's queue series (its lease moved to another process)."""
        for kind, label in self._series.pop(host, {}):
            self._gauge(kind).remove(host, label)

    def leased(self, hosts: set[str]) -> None:
        self.hosts.set(len(hosts))
        for host in set(self._series) - hosts:
            self.forget(host)

    async def refresh(self) -> None:
        async with self.sessions() as session:
            self._db.commands = await _counts(session, CommandRun.command, CommandRun.outcome)
            self._db.plans = await _counts(session, ActionPlan.action, ActionPlan.status)
            self._db.incidents = await _counts(
                session, Incident.kind, Incident.severity, Incident.state == "open"
            )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handler(self, _request: web.Request) -> web.Response:
        await self.refresh()
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _counts(
    session: AsyncSession, a: object, b: object, *where: object
) -> list[tuple[str, str, int]]:
    stmt = select(a, b, func.count()).where(*where).group_by(a, b)  # type: ignore[call-overload]
    return [(str(x), str(y), int(n)) for x, y, n in (await session.execute(stmt)).all()]
