"""The scheduler: every tick, take leases and due polls; poll; record; alert.

Polls run as tasks, at most ``concurrency`` reading at once, each after a random delay of
up to ``jitter`` x interval. A poll writes its sample and moves the host's incidents in one
transaction; then, outside it, the notifier posts what changed (a failed post is logged and
does not stop the monitor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from bot.inventory import Host
from bot.monitor import chart, incidents, samples
from bot.monitor.alert import Alert, Notifier
from bot.monitor.incidents import Policy
from bot.monitor.leases import Leases
from bot.monitor.metrics import Metrics
from bot.monitor.rules import measure, needs_disk
from bot.monitor.samples import Sample
from bot.services import Services

log = logging.getLogger(__name__)
CHART_BEFORE = 1800.0  # the chart starts this long before the incident opened
QUIET_WHEN_SNOOZED = {"grew", "escalated", "deescalated"}


class Monitor:
    def __init__(
        self,
        services: Services,
        notifier: Notifier,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.notifier = notifier
        self.metrics = metrics
        self.clock = clock
        self.config = services.inventory.config.monitor
        self.hosts = {h.name: h for h in services.inventory.select("all")}
        intervals = {n: self.config.interval_for(h.groups) for n, h in self.hosts.items()}
        self.leases = Leases(
            services.sessions, services.replica, intervals, self.config.ttl_seconds
        )
        self.policy = Policy(self.config.cooldown, services.replica)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.posting: set[asyncio.Task[None]] = set()
        self.failures: dict[str, int] = {}
        self.rng = random.Random()  # noqa: S311 - poll jitter, not secrets
        self._semaphore = asyncio.Semaphore(self.config.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; then give the leases back so others take over at once."""
        await self.leases.ensure_rows(self.clock())
        log.info("monitoring %d host(s) as %s", len(self.hosts), self.services.replica)
        try:
            while not stop.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.tick_seconds)
        finally:
            for task in list(self.inflight.values()):
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            await asyncio.gather(*self.posting, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.leases.release_all()

    async def tick(self) -> None:
        try:
            due = await self.leases.cycle(self.clock(), set(self.inflight))
        except Exception:
            log.exception("lease cycle failed; retrying at the next tick")
            return
        self.metrics.leased(self.leases.held)
        for name in due:
            task = asyncio.create_task(self._poll(self.hosts[name]), name=f"poll {name}")
            self.inflight[name] = task
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task.get_name().removeprefix("poll "), None)

    async def _poll(self, host: Host) -> None:
        interval = self.config.interval_for(host.groups)
        if self.config.jitter:
            await asyncio.sleep(self.rng.uniform(0, self.config.jitter * interval))
        rules = self.config.rules_for(host.groups)
        async with self._semaphore:
            sample = await samples.poll(
                self.services.executor, host, self.clock(), needs_disk(rules)
            )
        self.metrics.observe(sample)
        try:
            changes = await self._record(host, sample)
        except Exception:
            log.exception("%s: could not record the poll", host.name)
            return
        if changes:  # posting (and drawing charts) must not hold up the next poll
            task = asyncio.create_task(self._notify_all(host.name, changes))
            self.posting.add(task)
            task.add_done_callback(self.posting.discard)

    async def _notify_all(self, host: str, changes: list[Alert]) -> None:
        for alert in changes:
            try:
                await self._notify(alert)
            except Exception:
                log.exception("%s: could not post alert %s (%s)", host, alert.id, alert.event)

    async def _record(self, host: Host, sample: Sample) -> list[Alert]:
        rules = self.config.rules_for(host.groups)
        failures = 0 if sample.ok else self.failures.get(host.name, 0) + 1
        self.failures[host.name] = failures
        async with self.services.sessions() as session, session.begin():
            base = None
            if sample.ok and (rules.growth or rules.reason_spike):
                base = await samples.baseline(session, host.name, sample.at - rules.growth_window)
            session.add(samples.row(sample, self.services.replica))
            readings = measure(rules, sample, base, failures)
            detail = samples.describe(sample)
            return await incidents.apply(
                session, host.name, readings, detail, sample.at, self.policy
            )

    async def _notify(self, alert: Alert) -> None:
        if alert.event == "opened" or alert.root_ts is None:
            await self._open(alert)
            return
        await self.notifier.edit_root(alert)
        snoozed = alert.snoozed_until is not None and alert.snoozed_until > self.clock()
        quiet = snoozed and alert.event in QUIET_WHEN_SNOOZED
        if alert.acknowledged_by and alert.event == "grew":
            quiet = True
        if not quiet:
            await self.notifier.post_thread(alert)
        if alert.event == "resolved":
            await self._chart(alert)

    async def _open(self, alert: Alert) -> None:
        ref = await self.notifier.post_root(alert)
        if ref is None:
            return
        async with self.services.sessions() as session, session.begin():
            await incidents.set_root(session, alert.id, *ref)
        await self._chart(replace(alert, channel_id=ref[0], root_ts=ref[1]))

    async def _chart(self, alert: Alert) -> None:
        if not self.config.chart or alert.root_ts is None:
            return
        async with self.services.sessions() as session:
            rows = await samples.history(session, alert.host, alert.opened_at - CHART_BEFORE)
        if len(rows) < 2:
            return
        title = f"{alert.host}: deferred messages by reason ({alert.label})"
        png = await asyncio.to_thread(chart.render_png, rows, title, alert.opened_at)
        await self.notifier.post_chart(alert, png)
