"""What an alert shows: an incident as the templates and the notifier see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.db.models import Incident
from bot.mta.reasons import ReasonClass
from bot.text import duration, num

Event = Literal[
    "opened",
    "reopened",
    "escalated",
    "deescalated",
    "grew",
    "resolved",
    "acknowledged",
    "snoozed",
]
KIND_LABELS = {
    "deferred": "Deferred messages",
    "growth": "Deferred growth (messages/min)",
    "oldest_age": "Age of the oldest message",
    "spool_kib": "Deferred spool size",
    "unreachable": "Polls failed in a row",
}


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

    @classmethod
    def of(cls, row: Incident, event: Event, previous: str | None = None) -> Alert:
        return cls(
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
        if self.kind.startswith("spike:"):
            name = self.kind.removeprefix("spike:")
            known = name in ReasonClass.__members__
            return f"Spike in “{ReasonClass(name).label if known else name}” deferrals"
        return KIND_LABELS.get(self.kind, self.kind)

    def show(self, value: float) -> str:
        """A rule's value in its own unit."""
        if self.kind == "oldest_age":
            return duration(value)
        if self.kind == "spool_kib":
            return f"{num(round(value / 1024, 1))} MiB"
        return num(int(value)) if float(value).is_integer() else num(value)

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
        class with the most deferred messages at the last change (None: nothing deferred)."""
        if self.kind.startswith("spike:"):
            name = self.kind.removeprefix("spike:")
            return name if name in ReasonClass.__members__ else None
        counts = {
            str(c): int(n)
            for c, n in (self.detail.get("by_class") or {}).items()
            if str(c) in ReasonClass.__members__ and int(n) > 0
        }
        return min(counts, key=lambda c: (-counts[c], c)) if counts else None

    @property
    def buttons(self) -> list[tuple[str, str, str]]:
        """(label, action_id, value): commands run as the clicker, then our own actions.

        Purge… asks for a plan of the top reason class (previewed, approved by another
        person before anything is deleted); it is left out when nothing is deferred.
        """
        host, run = self.host, "mailq_run_thread"
        buttons = [
            ("Diagnose", run, f"diagnose {host}"),
            ("Summary", run, f"summary {host}"),
            ("Deferred", run, f"list {host} queue=deferred"),
            ("Flush", run, f"flush {host}"),
        ]
        if self.purge_class is not None:
            why = f'why="alert {self.id}"'
            buttons.append(("Purge…", run, f"purge {host} reason={self.purge_class} {why}"))
        buttons.append(("Snooze 1h", "mailq_alert_snooze", str(self.id)))
        buttons.append(("Acknowledge", "mailq_alert_ack", str(self.id)))
        return buttons


class Notifier(Protocol):
    """Where alerts go (Slack in ``bot.slack.alerts``); the monitor never sees Slack."""

    async def post_root(self, alert: Alert) -> tuple[str, str] | None: ...

    async def edit_root(self, alert: Alert) -> None: ...

    async def post_thread(self, alert: Alert) -> None: ...

    async def post_chart(self, alert: Alert, png: bytes) -> None: ...
