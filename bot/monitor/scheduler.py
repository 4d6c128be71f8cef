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
prune lease applies ``[retention]`` every ``retention.every`` (``bot.maintenance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bot.app.services import LiveServices, Services
from bot.inventory import Host
from bot.maintenance import prune_periodically
from bot.monitor import groups, samples
from bot.monitor.alert import Alert, Notifier
from bot.monitor.courier import Counters
from bot.monitor.herald import Herald
from bot.monitor.leases import Leases
from bot.monitor.metrics import Metrics
from bot.monitor.rules import measure, needs_disk
from bot.monitor.samples import Sample
from bot.remote.audited import Remote
from bot.stores import groups as group_store
from bot.stores import incidents
from bot.stores import samples as sample_store
from bot.stores.incidents import Policy
from bot.stores.samples import SampleView

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
BATCH_WAIT = 1.0  # seconds a finished poll may wait to be recorded with others (at most)


class Monitor:
    def __init__(
        self,
        live: LiveServices,
        notifier: Notifier,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live  # each round reads live.now(): a reload's inventory is followed
        services = live.now()
        # Polls keep no audit records and can change nothing: the choice is made here.
        self.remote = Remote.discarding(services.executor)
        self.notifier = notifier
        self.metrics = metrics
        self.clock = clock
        self.config = services.inventory.config.monitor
        self._inventory = services.inventory
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
        self.policy = Policy(self.config.cooldown, services.replica, self.config.notes_every)
        self.herald = Herald(live, notifier, notifier.channel, self.config, clock)
        metrics.follow_alerts(self.herald.courier.counters)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.waiting: set[str] = set()  # claimed, not started yet
        self.posting: set[asyncio.Task[None]] = set()
        self.failures: dict[str, int] = {}  # failed polls in a row, per host we keep
        self.pending: list[Sample] = []  # polled, not yet recorded
        self.last_success: float | None = None  # time.monotonic() of the last good poll
        self._arrived = asyncio.Event()
        self._flushing: asyncio.Future[None] | None = None
        self.batch_wait = min(BATCH_WAIT, self.config.tick_seconds / 2)
        self._semaphore = asyncio.Semaphore(self.config.concurrency)

    @property
    def services(self) -> Services:
        return self.live.now()

    @property
    def slack_counters(self) -> Counters:
        """What this process's alert courier did: posts, updates folded over the channel
        budget, edits (plain integers, for the metrics exporter)."""
        return self.herald.courier.counters

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
            await self.herald.courier.drain()
            with contextlib.suppress(Exception):
                await self.leases.release_all(unpolled)

    async def follow_inventory(self) -> None:
        """After a reload (``bot.app.reload``): poll the hosts the inventory has now, each at
        its group's interval and rules. A removed host is polled no more (its entry stays
        for the samples already taken). Start-up settings (tick, concurrency) stay."""
        inventory = self.services.inventory
        if inventory is self._inventory:
            return
        hosts = {h.name: h for h in inventory.select("all")}
        self.config = inventory.config.monitor
        self.hosts.update(hosts)
        self.leases.intervals = {n: self.config.interval_for(h.groups) for n, h in hosts.items()}
        await self.leases.ensure_rows(self.clock())
        self._inventory = inventory
        log.info("monitoring %d host(s) after a reload", len(hosts))

    async def tick(self) -> None:
        try:
            await self.follow_inventory()
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
        if sample.ok:
            self.last_success = time.monotonic()
        else:
            log.warning(
                "poll failed: host=%s request_id=%s reason=%s",
                host.name,
                f"poll-{host.name}-{int(sample.at * 1000)}",
                sample.error,
                extra={"host": host.name, "reason": sample.error},
            )
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
            await self.herald.refresh()
            changes, placer = await self._record(list(batch.values()))
        except Exception:
            log.exception("could not record %d poll(s)", len(batch))
            return
        by_host: dict[str, list[Alert]] = {}
        for alert in changes:
            by_host.setdefault(alert.host, []).append(alert)
            if alert.group_id is not None:
                placer.touched.add(alert.group_id)
        for host, alerts in by_host.items():  # posting (and charts) must not hold up polls
            self._post(self._notify_all(host, alerts))
        for group_id in sorted(placer.touched):
            self._post(self._settle(group_id, group_id in placer.created))

    def _post(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.posting.add(task)
        task.add_done_callback(self.posting.discard)

    async def _notify_all(self, host: str, changes: list[Alert]) -> None:
        for alert in changes:
            try:
                await self.herald.host(alert)
            except Exception:
                log.exception("%s: could not post alert %s (%s)", host, alert.id, alert.event)

    async def _settle(self, group_id: int, created: bool) -> None:
        """Settle a group whose members moved (after they are committed), then post."""
        try:
            async with self.services.sessions() as session, session.begin():
                view = await groups.settle(session, group_id, self.clock())
            if view is not None:
                await self.herald.group(view, created)
        except Exception:
            log.exception("could not settle group incident %s", group_id)

    async def _record(self, batch: list[Sample]) -> tuple[list[Alert], groups.Placer]:
        """Store ``batch`` and move its hosts' incidents, in one transaction."""
        changes: list[Alert] = []
        grouping = self.config.grouping
        async with self.services.sessions() as session, session.begin():
            current = await incidents.open_incidents(session, [s.host for s in batch])
            failures = {s.host: await self._failures(session, s) for s in batch}
            bases = {s.host: await self._baseline(session, s) for s in batch}
            await sample_store.store(session, batch, self.services.replica)
            open_groups = await group_store.open_groups(session) if batch else []
            now = max((s.at for s in batch), default=self.clock())
            placer = groups.Placer(session, grouping, open_groups, now, self.services.replica)
            for sample in batch:
                host = self.hosts[sample.host]
                rules = self.config.rules_for(host.groups)
                readings = measure(rules, sample, bases[sample.host], failures[sample.host])
                if not readings:
                    continue
                # grouped rules first: a group opened by this poll takes the host's other
                # incidents of its reason class in (inhibition)
                readings.sort(key=lambda r: not grouping.groups(r.kind))
                changes += await incidents.apply(
                    session,
                    sample.host,
                    readings,
                    samples.describe(sample),
                    sample.at,
                    self.policy,
                    current.get(sample.host, {}),
                    placer.for_sample(host, sample),
                )
            await group_store.mark_pending(session, self._own_roots(changes, placer))
        self.failures.update(failures)
        return changes, placer

    def _own_roots(self, changes: list[Alert], placer: groups.Placer) -> list[int]:
        """The roots this writer posts: incidents it opened (not in a group) and groups it
        made, unless a silence mutes them (then nobody posts until it ends)."""
        mine = [
            a.id
            for a in changes
            if a.event == "opened" and a.group_id is None and not self.herald.muting(a)
        ]
        for group_id in placer.created:
            row = placer.by_id(group_id)
            if row is not None and not any(
                s.target_kind == "rule" and fnmatch.fnmatchcase(row.kind, s.target)
                for s in self.herald.silences
            ):
                mine.append(group_id)
        return mine

    async def _failures(self, session: AsyncSession, sample: Sample) -> int:
        """Failed polls in a row up to this one (the history says, if we have no count)."""
        if sample.ok:
            return 0
        known = self.failures.get(sample.host)
        if known is None:
            known = await sample_store.failures_so_far(session, sample.host)
        return known + 1

    async def _baseline(self, session: AsyncSession, sample: Sample) -> SampleView | None:
        rules = self.config.rules_for(self.hosts[sample.host].groups)
        if not sample.ok or not (rules.growth or rules.reason_spike):
            return None
        return await sample_store.baseline(session, sample.host, sample.at - rules.growth_window)
