"""Grouping: which group incident a host's new incident joins (its rule's group) or folds
into (an open group of its reason class), and settling a group after its members moved.

A group's severity is its worst open member's; it resolves when its last member clears
(one resolved note), and a member joining a group that resolved within the window reopens
it in the same thread. See ``bot.stores.groups`` for how two processes agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.db.models import Incident
from bot.inventory import Host
from bot.monitor.alert import Alert, Event, GroupAlert
from bot.monitor.config import Grouping
from bot.monitor.rules import SPIKE_PREFIX, UNREACHABLE, Reading
from bot.monitor.samples import Sample
from bot.stores import groups as store

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def reason_class(reading: Reading, sample: Sample) -> str | None:
    """The reason class a reading is about: a spike's own class; for a queue rule the class
    with the most deferred messages; none for an unreachable host."""
    if reading.kind.startswith(SPIKE_PREFIX):
        return reading.kind.removeprefix(SPIKE_PREFIX)
    if reading.kind == UNREACHABLE or not sample.by_class:
        return None
    return min(sample.by_class, key=lambda c: (-sample.by_class[c], c))


def key(grouping: Grouping, reading: Reading, host: Host, cls: str | None) -> str:
    parts = [reading.kind]
    if "group" in grouping.by:
        parts.append("group=" + (host.groups[0] if host.groups else "-"))
    if "reason_class" in grouping.by and not reading.kind.startswith(SPIKE_PREFIX):
        parts.append("class=" + (cls or "-"))
    return "|".join(parts)


class Placer:
    """Places the new incidents of one batch (one transaction): ``open`` are the open
    groups read at its start, and the groups this batch made or reopened are added."""

    def __init__(
        self,
        session: AsyncSession,
        grouping: Grouping,
        open_groups: list[Incident],
        now: float,
        replica: str,
    ) -> None:
        self.session = session
        self.grouping = grouping
        self.by_key = {g.group_key: g for g in open_groups if g.group_key}
        self.now = now
        self.replica = replica
        self.created: set[int] = set()
        self.touched: set[int] = set()

    def by_id(self, group_id: int) -> Incident | None:
        return next((r for r in self.by_key.values() if r.id == group_id), None)

    def for_sample(self, host: Host, sample: Sample) -> Any:
        async def place(reading: Reading) -> int | None:
            cls = reason_class(reading, sample)
            if self.grouping.groups(reading.kind):
                return await self._join(key(self.grouping, reading, host, cls), reading, cls)
            return self._fold(cls)

        return place

    async def _join(self, group_key: str, reading: Reading, cls: str | None) -> int:
        row = self.by_key.get(group_key)
        if row is None:
            row, made = await store.join(
                self.session,
                group_key,
                reading.kind,
                cls,
                self.now,
                self.replica,
                self.grouping.window,
            )
            self.by_key[group_key] = row
            if made:
                self.created.add(row.id)
        self.touched.add(row.id)
        return row.id

    def _fold(self, cls: str | None) -> int | None:
        """An open group for a shared cause of this class takes the host's incident in."""
        if cls is None:
            return None
        for row in self.by_key.values():
            if row.reason_class == cls and row.state == "open":
                self.touched.add(row.id)
                return row.id
        return None


async def settle(session: AsyncSession, group_id: int, now: float) -> GroupAlert | None:
    """Bring the group in line with its members (row locked); the group as it is now, with
    the event this writer made (``updated``: only its members changed)."""
    row = await store.locked(session, group_id)
    if row is None:
        return None
    open_rows, gone = await store.members(session, row)
    worst = _worst(open_rows)
    previous = row.severity
    hosts = float(len({r.host for r in open_rows}))
    values: dict[str, Any] = {
        "value": hosts,
        "peak": max(row.peak, hosts),
        "updated_at": now,
    }
    event: Event = "updated"
    if worst is None and row.state == "open":
        values |= {"state": "resolved", "open_key": None, "resolved_at": now}
        event = "resolved"
    elif worst is not None and row.state == "resolved":
        values |= {
            "state": "open",
            "open_key": store.group_open_key(row.group_key or row.kind),
            "resolved_at": None,
            "severity": worst,
        }
        event = "reopened"
    elif worst is not None and worst != row.severity:
        values["severity"] = worst
        event = "escalated" if worst == "critical" else "deescalated"
    if event != "updated":
        values |= {"noted_at": now, "notified_severity": worst or row.severity}
    if not await store.write(session, row, values):
        event = "updated"
    return view(row, open_rows, gone, event, previous)


def view(
    row: Incident,
    open_rows: list[Incident],
    gone: list[str],
    event: Event = "updated",
    previous: str | None = None,
) -> GroupAlert:
    members = [Alert.of(r, "updated") for r in open_rows]
    return GroupAlert.of(row, members, gone, event, previous)


async def load(session: AsyncSession, group_id: int) -> GroupAlert | None:
    row = await store.get(session, group_id)
    if row is None:
        return None
    open_rows, gone = await store.members(session, row)
    return view(row, open_rows, gone)


def _worst(rows: list[Incident]) -> str | None:
    severities = {r.severity for r in rows}
    if "critical" in severities:
        return "critical"
    return "warning" if severities else None
