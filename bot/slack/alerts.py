"""Alerts in Slack: the root message (edited in place), notes in its thread, the chart,
and the Snooze and Acknowledge buttons.

Diagnose, Summary, Deferred, Flush and Purge… are ``mailq_run_thread`` buttons: the
command runs through the pipeline as the person who clicked, answered in the thread (Purge…
only makes a plan for the top reason class, approved by another person before it runs).
Snooze and Acknowledge are handled here: the clicker needs ``act`` on the host, and the
incident's change and its audit event are written in one transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update

from bot import render
from bot.app.pipeline import refuse
from bot.app.services import Services
from bot.auth import permitted
from bot.context import Identity
from bot.db.models import Incident
from bot.errors import PermissionDenied
from bot.monitor.alert import Alert, Event
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.slack import payloads
from bot.slack.delivery import ephemeral
from bot.stores import audit

log = logging.getLogger(__name__)
SNOOZE_SECONDS = 3600
ACK = "mailq_alert_ack"
SNOOZE = "mailq_alert_snooze"


class SlackNotifier:
    """Posts alerts through the app's Web API client (its configured base URL)."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    async def post_root(self, alert: Alert) -> tuple[str, str] | None:
        reply = render.render("alert", alert)
        response = await self.client.chat_postMessage(
            channel=self.channel, text=reply.fallback, blocks=reply.blocks
        )
        return str(response["channel"]), str(response["ts"])

    async def edit_root(self, alert: Alert) -> None:
        if alert.channel_id is None or alert.root_ts is None:
            return
        reply = render.render("alert", alert)
        await self.client.chat_update(
            channel=alert.channel_id, ts=alert.root_ts, text=reply.fallback, blocks=reply.blocks
        )

    async def post_thread(self, alert: Alert) -> None:
        if alert.channel_id is None or alert.root_ts is None:
            return
        reply = render.render("alert_note", alert)
        await self.client.chat_postMessage(
            channel=alert.channel_id,
            thread_ts=alert.root_ts,
            text=reply.fallback,
            blocks=reply.blocks,
        )

    async def post_chart(self, alert: Alert, png: bytes) -> None:
        if alert.channel_id is None or alert.root_ts is None:
            return
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
        await self.client.files_upload_v2(
            channel=alert.channel_id,
            thread_ts=alert.root_ts,
            content=png,
            filename=f"trend-{alert.host}-{stamp}.png",
            title=f"{alert.host}: deferred messages by reason class",
        )


def monitor_for(services: Services, client: AsyncWebClient, metrics: Metrics) -> Monitor | None:
    """The monitor, if it is enabled and there is an alert channel to post in."""
    config = services.inventory.config
    channel = config.slack.alert_channel
    if not config.monitor.enabled or channel is None:
        log.info("monitoring off (%s)", "disabled" if channel else "no [slack] alert_channel")
        return None
    return Monitor(services, SlackNotifier(client, channel), metrics)


def register(app: AsyncApp) -> None:
    app.action(ACK)(on_alert_button)
    app.action(SNOOZE)(on_alert_button)


async def on_alert_button(
    ack: AsyncAck,
    body: dict[str, Any],
    context: AsyncBoltContext,
    client: AsyncWebClient,
    respond: AsyncRespond,
    services: Services,
) -> None:
    await ack()
    action = body["actions"][0]
    event: Event = "acknowledged" if action["action_id"] == ACK else "snoozed"
    verb = "acknowledge" if event == "acknowledged" else "snooze"
    request = payloads.from_click(body, context, f"{verb} incident {action.get('value', '')}")
    identity = Identity.of(request, await services.groups_of(request.user_id))
    try:
        alert = await _change(services, identity, int(action.get("value", "0")), event)
    except PermissionDenied as exc:  # recorded like every refused command, then shown
        outcome = await refuse(request, services, verb, exc)
        await ephemeral(respond, outcome.reply)
        return
    if alert is None:
        return  # resolved meanwhile, or unknown: nothing to change
    notifier = SlackNotifier(client, alert.channel_id or "")
    await notifier.edit_root(alert)
    await notifier.post_thread(alert)


async def _change(
    services: Services, identity: Identity, incident_id: int, event: Event
) -> Alert | None:
    """Acknowledge or snooze an open incident and audit it, in one transaction."""
    now = services.clock()
    async with services.sessions() as session, session.begin():
        row = await session.get(Incident, incident_id)
        if row is None or row.state != "open":
            return None
        _authorise(services, identity, row.host)
        if event == "acknowledged":
            values: dict[str, Any] = {"acknowledged_by": identity.user_id, "acknowledged_at": now}
        else:
            values = {"snoozed_until": now + SNOOZE_SECONDS, "snoozed_by": identity.user_id}
        stmt = (
            update(Incident)
            .where(Incident.id == row.id, Incident.version == row.version)
            .values(version=row.version + 1, **values)
        )
        if (await session.execute(stmt)).rowcount != 1:  # type: ignore[attr-defined]
            return None
        await audit.append(session, _audit(identity, row, event, values))
        await session.refresh(row)
        alert = Alert.of(row, event)
    return replace(alert, actor=identity.user_id)


def _authorise(services: Services, identity: Identity, host: str) -> None:
    ok = permitted(identity, "act", [host], services.inventory, services.allowed_teams)
    if not ok:
        raise PermissionDenied(
            f"You may not snooze or acknowledge alerts on {host}: that needs the operator "
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
