"""What the monitor says in Slack about the changes it won, through the courier.

- A host's own incident: a root when it opens (unless a silence mutes it), then root edits
  and thread notes (severity changes, reopen, resolve; growth at most every
  ``notes_every``). A member of a group posts nothing of its own: its group shows it.
- A group: one root ("Unreachable: 37 hosts", worst first, the full list as a file in the
  thread past ``SHOWN_HOSTS``), edited in place as hosts join and clear; a note when its
  severity changes, and one when its last host clears.
- A muted incident (a silence matches it) posts nothing; its root, if it has one, lists the
  silence. When the silences in force change, unposted open incidents that nothing mutes
  any more get their roots (one writer claims each), and open roots are edited.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.app.services import LiveServices, Services
from bot.monitor import chart, groups
from bot.monitor.alert import SHOWN_HOSTS, Alert, GroupAlert, Notifier
from bot.monitor.config import MonitorSection
from bot.monitor.courier import EDIT_BURST, Courier, Kind
from bot.stores import budget, silences
from bot.stores import groups as store
from bot.stores import samples as sample_store
from bot.stores.silences import SilenceView

log = logging.getLogger(__name__)
CHART_BEFORE = 1800.0  # the chart starts this long before the incident opened
QUIET_WHEN_SNOOZED = {"grew", "escalated", "deescalated"}
NOTED = {"reopened", "escalated", "deescalated", "grew", "resolved"}
SWEEP_EVERY = 60.0  # look for unposted incidents at least this often (a failed post)


class Herald:
    def __init__(
        self,
        live: LiveServices,
        notifier: Notifier,
        channel: str,
        config: MonitorSection,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        services = live.now()
        self.notifier = notifier
        self.channel = channel
        self.config = config
        self.clock = clock
        self.courier = Courier(notifier, config.budget, shared=self._shared_budget)
        self.silences: tuple[SilenceView, ...] = ()
        self._seen: frozenset[int] | None = None
        self._swept = 0.0
        self.hosts = {h.name: h for h in services.inventory.select("all")}

    @property
    def services(self) -> Services:
        return self.live.now()

    async def _shared_budget(self, channel: str, kind: Kind, wait: bool) -> float | None:
        """The channel's post or edit budget in the database: every replica takes from it."""
        b = self.config.budget
        if kind == "edit":
            bucket = budget.Bucket(EDIT_BURST, b.edits_per_minute / 60, 0.0)
        else:
            bucket = budget.Bucket(b.burst, b.per_minute / 60, b.gap)
        key = budget.key(channel, kind)
        return await budget.reserve(self.services.sessions, key, bucket, self.clock(), wait)

    # -- silences ---------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the silences in force; sweep when they changed (or a while passed)."""
        now = self.clock()
        async with self.services.sessions() as session:
            found = tuple(await silences.active(session, now))
        changed = frozenset(found) ^ frozenset(self.silences)
        self.silences = found
        ids = frozenset(s.id for s in found)
        if ids != self._seen or now - self._swept >= SWEEP_EVERY:
            self._seen, self._swept = ids, now
            await self.sweep(changed)

    def muting(self, alert: Alert | GroupAlert) -> tuple[SilenceView, ...]:
        return tuple(s for s in self.silences if self._mutes(s, alert))

    def _mutes(self, s: SilenceView, alert: Alert | GroupAlert) -> bool:
        if s.target_kind == "incident":
            return s.target == str(alert.id)
        if s.target_kind == "rule":
            return fnmatch.fnmatchcase(alert.kind, s.target)
        if isinstance(alert, GroupAlert):
            return False
        if s.target_kind == "host":
            return alert.host == s.target
        host = self.hosts.get(alert.host)
        return host is not None and s.target in host.groups

    def _dress(self, alert: Any) -> Any:
        alert = replace(alert, silences=self.muting(alert))
        if isinstance(alert, GroupAlert):
            members = tuple(replace(m, silences=self.muting(m)) for m in alert.members)
            alert = replace(alert, members=members)
        return self.courier.with_folded(alert)

    async def sweep(self, changed: frozenset[SilenceView] = frozenset()) -> None:
        """Post the roots of open incidents no silence mutes any more (one writer claims
        each); edit the open roots that a ``changed`` silence (begun or ended) matches."""
        async with self.services.sessions() as session, session.begin():
            claimed = []
            for row in await store.unposted(session):
                alert = await self._view(session, row.id)
                free = alert is not None and not self.muting(alert)
                if free and alert is not None and await store.claim_root(session, row.id):
                    claimed.append(alert)
            roots = [r.id for r in await store.posted(session)] if changed else []
        for alert in claimed:
            await self._post_root(alert)
        for incident_id in roots:
            async with self.services.sessions() as session:
                alert = await self._view(session, incident_id)
            if alert is not None and alert.root_ts and self._touched_by(changed, alert):
                self.courier.edit(alert, self._reload(incident_id))

    def _touched_by(self, changed: frozenset[SilenceView], alert: Alert | GroupAlert) -> bool:
        shown: list[Alert | GroupAlert] = [alert]
        if isinstance(alert, GroupAlert):
            shown += alert.members
        return any(self._mutes(s, a) for s in changed for a in shown)

    # -- views ------------------------------------------------------------------------

    async def _view(self, session: Any, incident_id: int) -> Alert | GroupAlert | None:
        row = await store.get(session, incident_id)
        if row is None:
            return None
        if row.group_key is not None:
            return await groups.load(session, incident_id)
        return Alert.of(row, "updated")

    def _reload(self, incident_id: int) -> Callable[[], Awaitable[Any]]:
        async def reload() -> Any:
            async with self.services.sessions() as session:
                alert = await self._view(session, incident_id)
            return None if alert is None else self._dress(alert)

        return reload

    # -- a host's incident ------------------------------------------------------------

    async def host(self, alert: Alert) -> None:
        alert = self._dress(alert)
        if alert.group_id is not None:
            return  # its group shows it (the scheduler settles the group)
        if alert.event == "opened" or not alert.root_ts:
            if alert.event == "opened" and not alert.silences:
                await self._post_root(alert)
            return  # muted, or another writer posts the root
        self.courier.edit(alert, self._reload(alert.id))
        muted = alert.silences and alert.event != "resolved"  # a resolve is still said
        if muted or alert.event not in NOTED or self._quiet(alert):
            return
        resolved = alert.event == "resolved"
        await self.courier.note(alert, self._reload(alert.id), wait=resolved)
        if resolved:
            await self._chart(alert)

    async def marked(self, alert: Alert) -> None:
        """Someone acknowledged or snoozed (``bot.monitor.marks``): redraw the root, and
        say who in its thread. The note waits for the channel's token rather than fold: it
        is a person's act, not an update the root's numbers carry."""
        await self.refresh()  # a snooze's silence shows on the root at once
        self.courier.edit(alert, self._reload(alert.id))
        await self.courier.note(alert, self._reload(alert.id), wait=True)

    def _quiet(self, alert: Alert) -> bool:
        snoozed = alert.snoozed_until is not None and alert.snoozed_until > self.clock()
        if snoozed and alert.event in QUIET_WHEN_SNOOZED:
            return True
        return bool(alert.acknowledged_by and alert.event == "grew")

    # -- a group ----------------------------------------------------------------------

    async def group(self, alert: GroupAlert, created: bool) -> None:
        alert = self._dress(alert)
        if created:
            if not alert.silences and not alert.resolved:
                await self._post_root(alert)
            else:
                await self._release(alert.id)
            return
        if not alert.root_ts:
            return
        self.courier.edit(alert, self._reload(alert.id))
        if (alert.silences and alert.event != "resolved") or alert.event not in NOTED:
            return
        await self.courier.note(alert, self._reload(alert.id), wait=alert.event == "resolved")
        if alert.event in ("escalated", "reopened"):
            await self._listing(alert)

    async def _listing(self, alert: GroupAlert) -> None:
        if len(alert.members) <= SHOWN_HOSTS:
            return
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(self.clock()))
        await self.courier.file(
            alert,
            f"incident-{alert.id}-hosts-{stamp}.txt",
            alert.title,
            alert.listing().encode(),
            self._reload(alert.id),
        )

    # -- roots ------------------------------------------------------------------------

    async def _post_root(self, alert: Alert | GroupAlert) -> None:
        """Post a claimed root (``root_ts`` pending) and record it; on failure give the
        claim back so a later sweep tries again."""
        ref = None
        try:
            ref = await self.courier.root(self.channel, alert)
        finally:
            async with self.services.sessions() as session, session.begin():
                await store.set_root(session, alert.id, self.channel, ref[1] if ref else None)
        if ref is None:
            return
        posted = replace(alert, channel_id=ref[0], root_ts=ref[1])
        if isinstance(posted, GroupAlert):
            await self._listing(posted)
        else:
            await self._chart(posted)

    async def _release(self, incident_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            await store.set_root(session, incident_id, self.channel, None)

    async def _chart(self, alert: Alert) -> None:
        if not self.config.chart or not alert.root_ts:
            return
        async with self.services.sessions() as session:
            rows = await sample_store.history(session, alert.host, alert.opened_at - CHART_BEFORE)
        if len(rows) < 2:
            return
        title = f"{alert.host}: deferred messages by reason ({alert.label})"
        png = await asyncio.to_thread(chart.render_png, rows, title, alert.opened_at)
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
        await self.courier.file(
            alert,
            f"trend-{alert.host}-{stamp}.png",
            f"{alert.host}: deferred messages by reason class",
            png,
            self._reload(alert.id),
        )
