"""What an alert shows: an incident as the templates and the notifier see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from bot.db.models import Incident
from bot.postfix.reasons import DELIVERS_ON_ITS_OWN, ReasonClass
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


def _purgeable(name: str) -> bool:
    return name in ReasonClass.__members__ and ReasonClass(name) not in DELIVERS_ON_ITS_OWN


class Notifier(Protocol):
    """Where alerts go (Slack in ``bot.slack.alerts``); the monitor never sees Slack."""

    async def post_root(self, alert: Alert) -> tuple[str, str] | None: ...

    async def edit_root(self, alert: Alert) -> None: ...

    async def post_thread(self, alert: Alert) -> None: ...

    async def post_chart(self, alert: Alert, png: bytes) -> None: ...
