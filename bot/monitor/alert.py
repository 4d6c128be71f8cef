"""What an alert shows: an incident as the templates and the notifier see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from bot.db.models import Incident
from bot.postfix.reasons import DELIVERS_ON_ITS_OWN, ReasonClass
from bot.text import duration, num

if TYPE_CHECKING:
    from bot.stores.silences import SilenceView

Event = Literal[
    "opened",
    "reopened",
    "escalated",
    "deescalated",
    "grew",
    "resolved",
    "acknowledged",
    "snoozed",
    "updated",
]
# A group's title, by rule: "Unreachable: 37 hosts".
GROUP_TITLES = {
    "queued": "Queue over threshold",
    "deferred": "Deferred over threshold",
    "growth": "Deferred growing",
    "oldest_age": "Old mail queued",
    "spool_kib": "Deferred spool large",
    "unreachable": "Unreachable",
}
SHOWN_HOSTS = 15  # a group's root lists this many hosts; the full list goes in a file
KIND_LABELS = {
    "queued": "Messages queued",
    "deferred": "Deferred messages",
    "growth": "Deferred growth (messages/min)",
    "oldest_age": "Age of the oldest message",
    "spool_kib": "Deferred spool size",
    "unreachable": "Polls failed in a row",
}


class Button(NamedTuple):
    """One button on the alert; ``confirm``: Slack asks "are you sure?" before it runs (the
    click is authorised again in any case, for the person who clicked)."""

    text: str
    action_id: str
    value: str
    confirm: bool = False


@dataclass(frozen=True)
class Alert:
    id: int
    host: str
    kind: str
    state: str
    severity: str
    value: float
    peak: float
    threshold: float
    detail: dict[str, Any]
    opened_at: float
    updated_at: float
    resolved_at: float | None
    channel_id: str | None
    root_ts: str | None
    acknowledged_by: str | None
    snoozed_until: float | None
    snoozed_by: str | None
    event: Event = "opened"
    previous_severity: str | None = None
    actor: str | None = None
    group_id: int | None = None
    silences: tuple[SilenceView, ...] = ()  # those muting this incident now
    folded: int = 0  # updates folded into the root (the channel's budget was spent)

    @classmethod
    def of(cls, row: Incident, event: Event, previous: str | None = None) -> Alert:
        return cls(
            group_id=row.group_id,
            id=row.id,
            host=row.host,
            kind=row.kind,
            state=row.state,
            severity=row.severity,
            value=row.value,
            peak=row.peak,
            threshold=row.threshold,
            detail=dict(row.detail),
            opened_at=row.opened_at,
            updated_at=row.updated_at,
            resolved_at=row.resolved_at,
            channel_id=row.channel_id,
            root_ts=row.root_ts,
            acknowledged_by=row.acknowledged_by,
            snoozed_until=row.snoozed_until,
            snoozed_by=row.snoozed_by,
            event=event,
            previous_severity=previous,
        )

    @property
    def label(self) -> str:
        return label(self.kind)

    def show(self, value: float) -> str:
        """A rule's value in its own unit."""
        return show(self.kind, value)

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"

    @property
    def lasted(self) -> str:
        return duration((self.resolved_at or self.updated_at) - self.opened_at)

    @property
    def top_reasons(self) -> list[tuple[str, str, int]]:
        return [(str(c), str(r), int(n)) for c, r, n in self.detail.get("top_reasons", [])]

    @property
    def purge_class(self) -> str | None:
        """The reason class a Purge… plan selects: the spiking one for a spike, else the
        class with the most deferred messages at the last change. Never a class whose mail
        is delivered on its own (``DELIVERS_ON_ITS_OWN``: greylisting, rate limits): then
        the next largest class, and for a spike of such a class none. None: no button."""
        if self.kind.startswith("spike:"):
            name = self.kind.removeprefix("spike:")
            return name if _purgeable(name) else None
        counts = {
            str(c): int(n)
            for c, n in (self.detail.get("by_class") or {}).items()
            if _purgeable(str(c)) and int(n) > 0
        }
        return min(counts, key=lambda c: (-counts[c], c)) if counts else None

    @property
    def buttons(self) -> list[Button]:
        """Commands run as the clicker, then our own actions.

        Flush asks for confirmation first: it retries every deferred message on the host.
        Purge… asks for a plan of ``purge_class`` (previewed, approved by another person
        before anything is deleted); it is left out when there is no such class.
        """
        host, run = self.host, "mailq_run_thread"
        buttons = [
            Button("Diagnose", run, f"diagnose {host}"),
            Button("Summary", run, f"summary {host}"),
            Button("Deferred", run, f"list {host} queue=deferred"),
            Button("Flush", run, f"flush {host}", confirm=True),
        ]
        if self.purge_class is not None:
            why = f'why="alert {self.id}"'
            buttons.append(Button("Purge…", run, f"purge {host} reason={self.purge_class} {why}"))
        buttons.append(Button("Snooze 1h", "mailq_alert_snooze", str(self.id)))
        buttons.append(Button("Acknowledge", "mailq_alert_ack", str(self.id)))
        return buttons


def label(kind: str) -> str:
    if kind.startswith("spike:"):
        name = kind.removeprefix("spike:")
        known = name in ReasonClass.__members__
        return f"Spike in “{ReasonClass(name).label if known else name}” deferrals"
    return KIND_LABELS.get(kind, kind)


def show(kind: str, value: float) -> str:
    if kind == "oldest_age":
        return duration(value)
    if kind == "spool_kib":
        return f"{num(round(value / 1024, 1))} MiB"
    return num(int(value)) if float(value).is_integer() else num(value)


@dataclass(frozen=True)
class GroupAlert:
    """One rule on many hosts: the group incident and its open members, worst first."""

    id: int
    kind: str
    key: str
    reason_class: str | None
    state: str
    severity: str
    peak: float  # most hosts at once
    opened_at: float
    updated_at: float
    resolved_at: float | None
    channel_id: str | None
    root_ts: str | None
    members: tuple[Alert, ...]
    recovered: tuple[str, ...]  # hosts that were in the group and cleared
    event: Event = "opened"
    previous_severity: str | None = None
    silences: tuple[SilenceView, ...] = ()
    folded: int = 0

    @classmethod
    def of(
        cls,
        row: Incident,
        members: list[Alert],
        recovered: list[str],
        event: Event = "opened",
        previous: str | None = None,
    ) -> GroupAlert:
        return cls(
            id=row.id,
            kind=row.kind,
            key=row.group_key or row.kind,
            reason_class=row.reason_class,
            state=row.state,
            severity=row.severity,
            peak=row.peak,
            opened_at=row.opened_at,
            updated_at=row.updated_at,
            resolved_at=row.resolved_at,
            channel_id=row.channel_id,
            root_ts=row.root_ts,
            members=tuple(sorted(members, key=worst_first)),
            recovered=tuple(sorted(recovered)),
            event=event,
            previous_severity=previous,
        )

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"

    @property
    def title(self) -> str:
        name = GROUP_TITLES.get(self.kind) or label(self.kind)
        count = len(self.hosts)
        if self.resolved:
            return f"{name}: all clear ({num(int(self.peak))} hosts at most)"
        return f"{name}: {num(count)} host{'' if count == 1 else 's'}"

    @property
    def hosts(self) -> list[str]:
        """Each host once (a host may be in a group with several incidents), worst first."""
        return list(dict.fromkeys(m.host for m in self.members))

    @property
    def shown(self) -> tuple[Alert, ...]:
        return self.members[:SHOWN_HOSTS]

    @property
    def more(self) -> int:
        return max(0, len(self.members) - SHOWN_HOSTS)

    @property
    def lasted(self) -> str:
        return duration((self.resolved_at or self.updated_at) - self.opened_at)

    def listing(self) -> str:
        """Every host in the group, worst first, one a line (the file in the thread)."""
        lines = [f"{self.title} (incident {self.id})", ""]
        for m in self.members:
            lines.append(f"{m.host}\t{m.severity}\t{m.label}: {m.show(m.value)}")
        if self.recovered:
            lines += ["", f"Recovered: {', '.join(self.recovered)}"]
        return "\n".join(lines) + "\n"


def worst_first(alert: Alert) -> tuple[int, float, str]:
    return (0 if alert.severity == "critical" else 1, -alert.value, alert.host)


def _purgeable(name: str) -> bool:
    return name in ReasonClass.__members__ and ReasonClass(name) not in DELIVERS_ON_ITS_OWN


class Notifier(Protocol):
    """Where alerts go (Slack in ``bot.slack.alerts``); the monitor never sees Slack."""

    channel: str

    async def post_root(self, alert: Alert | GroupAlert) -> tuple[str, str] | None: ...

    async def edit_root(self, alert: Alert | GroupAlert) -> None: ...

    async def post_thread(self, alert: Alert | GroupAlert) -> None: ...

    async def post_chart(self, alert: Alert, png: bytes) -> None: ...

    async def post_file(self, alert: Any, filename: str, title: str, content: bytes) -> None: ...
