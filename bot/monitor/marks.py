"""A person marks an open incident: Acknowledge, or Snooze for an hour.

``mark`` checks that the person holds ``act`` on the incident's host (every host, for a
group incident), changes the incident, and writes its audit event in the same transaction.
A snooze is a silence of that one incident (``bot.stores.silences``), so it is listed, it
expires, and it mutes like any other silence. What is then said in Slack goes through the
monitor's herald (``Herald.marked``), under the same channel budget as every alert post.
The front end only turns the click into ``mark(...)`` and shows a refusal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.auth import permitted
from bot.context import Identity
from bot.errors import PermissionDenied
from bot.monitor.alert import Alert, Event
from bot.stores import audit, incidents, silences

if TYPE_CHECKING:
    from bot.app.services import Services
    from bot.db.models import Incident

SNOOZE_SECONDS = 3600


async def mark(
    services: Services, identity: Identity, incident_id: int, event: Event
) -> Alert | None:
    """Acknowledge or snooze an open incident and audit it, in one transaction; None when it
    is unknown or no longer open (nothing to change). Raises ``PermissionDenied``."""
    now = services.clock()
    async with services.sessions() as session, session.begin():
        row = await incidents.load(session, incident_id)
        if row is None or row.state != "open":
            return None
        everyone = [h.name for h in services.inventory.select("all")]
        hosts = [row.host] if row.group_key is None else everyone
        _authorise(services, identity, hosts)
        if event == "acknowledged":
            values: dict[str, Any] = {"acknowledged_by": identity.user_id, "acknowledged_at": now}
        else:
            values = {"snoozed_until": now + SNOOZE_SECONDS, "snoozed_by": identity.user_id}
        if not await incidents.change(session, row, values):
            return None
        muted: tuple[silences.SilenceView, ...] = ()
        if event == "snoozed":  # a silence of this incident: it posts nothing until then
            why = f"Snooze button on incident {row.id}"
            found = await silences.add(
                session, "incident", str(row.id), why, identity.user_id, now, now + SNOOZE_SECONDS
            )
            muted = (found,)
            values = {**values, "silence": found.id}
        await audit.append(session, _audit(identity, row, event, values))
        alert = Alert.of(row, event)
    return replace(alert, actor=identity.user_id, silences=muted)


def _authorise(services: Services, identity: Identity, hosts: list[str]) -> None:
    ok = permitted(identity, "act", hosts, services.inventory, services.allowed_teams)
    if not ok:
        where = hosts[0] if len(hosts) == 1 else "every host of this group"
        raise PermissionDenied(
            f"You may not snooze or acknowledge alerts on {where}: that needs the operator "
            "role on the host. Ask a mailqbot admin."
        )


def _audit(
    identity: Identity, row: Incident, event: str, values: dict[str, Any]
) -> audit.AuditRecord:
    return audit.AuditRecord(
        source="slack",
        actor=identity.user_id,
        team_id=identity.team_id,
        action=f"incident.{event}",
        host=row.host,
        detail={"incident": row.id, "kind": row.kind, "channel_id": identity.channel_id, **values},
    )
