"""The scheduler: every tick, take leases and due polls; poll; record; alert.

Each tick claims the polls due before the next one (``bot.monitor.leases``); a poll runs as a
task that waits for its start time, then reads with at most ``concurrency`` others. Finished
polls are recorded together, at most ``BATCH_WAIT``
seconds after the first of them: one transaction reads the open incidents of all their
hosts (one query), inserts all their samples (one multi-row INSERT) and moves the incidents
whose rule says so; then, outside it, the notifier posts what changed (a failed post is
logged and does not stop the monitor). Consecutive failed polls are counted in memory while
this process keeps a host's lease; after a takeover or restart the count is read back from
the host's sample history, so it survives the move. Alongside, the replica that holds the
prune lease applies ``[retention]`` every ``retention.every_minutes`` (``bot.maintenance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from bot.app.services import Services
from bot.db.models import QueueSample
from bot.inventory import Host
from bot.maintenance import prune_periodically
from bot.monitor import chart, incidents, samples
from bot.monitor.alert import Alert, Notifier
from bot.monitor.incidents import Policy
from bot.monitor.leases import Leases
from bot.monitor.metrics import Metrics
from bot.monitor.rules import measure, needs_disk
from bot.monitor.samples import Sample
from bot.remote.audited import Remote

log = logging.getLogger(__name__)
BATCH_WAIT = 1.0  # seconds a finished poll may wait to be recorded with others (at most)
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
        # Polls keep no audit records and can change nothing: the choice is made here.
        self.remote = Remote.discarding(services.executor)
        self.notifier = notifier
        self.metrics = metrics
        self.clock = clock
        self.config = services.inventory.config.monitor
        self.hosts = {h.name: h for h in services.inventory.select("all")}
        intervals = {n: self.config.interval_for(h.groups) for n, h in self.hosts.items()}
        self.leases = Leases(
            services.sessions,
            services.replica,
            intervals,
            self.config.ttl_seconds,
            ahead=self.config.tick_seconds,
            jitter=self.config.jitter,
        )
        self.policy = Policy(self.config.cooldown, services.replica)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.waiting: set[str] = set()  # claimed, not started yet
        self.posting: set[asyncio.Task[None]] = set()
        self.failures: dict[str, int] = {}  # failed polls in a row, per host we keep
        self.pending: list[Sample] = []  # polled, not yet recorded
        self._arrived = asyncio.Event()
        self._flushing: asyncio.Future[None] | None = None
        self.batch_wait = min(BATCH_WAIT, self.config.tick_seconds / 2)
        self._semaphore = asyncio.Semaphore(self.config.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop``; then give the leases back so others take over at once."""
        await self.leases.ensure_rows(self.clock())
        log.info("monitoring %d host(s) as %s", len(self.hosts), self.services.replica)
        recorder = asyncio.create_task(self._recorder())
        retention = self.services.inventory.config.retention
        pruner = asyncio.create_task(
            prune_periodically(
                self.services.sessions, retention, self.services.replica, stop, self.clock
            )
        )
        try:
            while not stop.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.tick_seconds)
        finally:
            unpolled = set(self.waiting)  # their slots go back with the leases
            for task in list(self.inflight.values()):
                task.cancel()
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
            recorder.cancel()
            pruner.cancel()
            await asyncio.gather(recorder, pruner, return_exceptions=True)
            if self._flushing is not None:
                await asyncio.gather(self._flushing, return_exceptions=True)
            while self.pending:  # what finished polls saw is kept
                await self._flush()
            await asyncio.gather(*self.posting, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.leases.release_all(unpolled)

    async def tick(self) -> None:
        try:
            due = await self.leases.cycle(self.clock(), set(self.inflight))
        except Exception:
            log.exception("lease cycle failed; retrying at the next tick")
            return
        self.metrics.leased(self.leases.held)
        for host in [h for h in self.failures if h not in self.leases.held]:
            del self.failures[host]  # another process may poll it meanwhile: re-read later
        for host in self.leases.taken:
            self.failures.pop(host, None)
        for name, start in due.items():
            self.waiting.add(name)
            task = asyncio.create_task(self._poll(self.hosts[name], start), name=f"poll {name}")
            self.inflight[name] = task
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task.get_name().removeprefix("poll "), None)

    async def _poll(self, host: Host, start: float) -> None:
        try:
            delay = start - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self.waiting.discard(host.name)
        rules = self.config.rules_for(host.groups)
        async with self._semaphore:
            sample = await samples.poll(self.remote, host, self.clock(), needs_disk(rules))
        self.metrics.observe(sample)
        self.pending.append(sample)
        self._arrived.set()

    async def _recorder(self) -> None:
        """Record finished polls in batches, ``batch_wait`` after the first one arrives."""
        while True:
            await self._arrived.wait()
            await asyncio.sleep(self.batch_wait)
            self._flushing = asyncio.ensure_future(self._flush())
            await asyncio.shield(self._flushing)  # a stop lets the batch finish

    async def _flush(self) -> None:
        self._arrived.clear()
        batch: dict[str, Sample] = {}
        later: list[Sample] = []
        for sample in self.pending:  # one sample per host and batch; a second waits
            if sample.host in batch:
                later.append(sample)
            else:
                batch[sample.host] = sample
        self.pending = later
        if later:
            self._arrived.set()
        try:
            changes = await self._record(list(batch.values()))
        except Exception:
            log.exception("could not record %d poll(s)", len(batch))
            return
        by_host: dict[str, list[Alert]] = {}
        for alert in changes:
            by_host.setdefault(alert.host, []).append(alert)
        for host, alerts in by_host.items():  # posting (and charts) must not hold up polls
            task = asyncio.create_task(self._notify_all(host, alerts))
            self.posting.add(task)
            task.add_done_callback(self.posting.discard)

    async def _notify_all(self, host: str, changes: list[Alert]) -> None:
        for alert in changes:
            try:
                await self._notify(alert)
            except Exception:
                log.exception("%s: could not post alert %s (%s)", host, alert.id, alert.event)

    async def _record(self, batch: list[Sample]) -> list[Alert]:
        """Store ``batch`` and move its hosts' incidents, in one transaction."""
        changes: list[Alert] = []
        async with self.services.sessions() as session, session.begin():
            current = await incidents.open_incidents(session, [s.host for s in batch])
            failures = {s.host: await self._failures(session, s) for s in batch}
            bases = {s.host: await self._baseline(session, s) for s in batch}
            await samples.store(session, batch, self.services.replica)
            for sample in batch:
                rules = self.config.rules_for(self.hosts[sample.host].groups)
                readings = measure(rules, sample, bases[sample.host], failures[sample.host])
                if not readings:
                    continue
                changes += await incidents.apply(
                    session,
                    sample.host,
                    readings,
                    samples.describe(sample),
                    sample.at,
                    self.policy,
                    current.get(sample.host, {}),
                )
        self.failures.update(failures)
        return changes

    async def _failures(self, session: AsyncSession, sample: Sample) -> int:
        """Failed polls in a row up to this one (the history says, if we have no count)."""
        if sample.ok:
            return 0
        known = self.failures.get(sample.host)
        if known is None:
            known = await samples.failures_so_far(session, sample.host)
        return known + 1

    async def _baseline(self, session: AsyncSession, sample: Sample) -> QueueSample | None:
        rules = self.config.rules_for(self.hosts[sample.host].groups)
        if not sample.ok or not (rules.growth or rules.reason_spike):
            return None
        return await samples.baseline(session, sample.host, sample.at - rules.growth_window)

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
