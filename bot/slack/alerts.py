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

from bot import render
from bot.app.pipeline import refuse
from bot.app.services import Services
from bot.auth import permitted
from bot.context import Identity
from bot.db.models import Incident
from bot.errors import PermissionDenied
from bot.monitor.alert import Alert, Event, GroupAlert
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.slack import payloads
from bot.slack.delivery import ephemeral
from bot.stores import audit, incidents, silences
from bot.stores.groups import GROUP_HOST

log = logging.getLogger(__name__)
SNOOZE_SECONDS = 3600
ACK = "mailq_alert_ack"
SNOOZE = "mailq_alert_snooze"


class SlackNotifier:
    """Posts alerts through the app's Web API client (its configured base URL)."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    async def post_root(self, alert: Alert | GroupAlert) -> tuple[str, str] | None:
        reply = render.render(_template(alert), alert)
        response = await self.client.chat_postMessage(
            channel=self.channel, text=reply.fallback, blocks=reply.blocks
        )
        return str(response["channel"]), str(response["ts"])

    async def edit_root(self, alert: Alert | GroupAlert) -> None:
        if not alert.channel_id or not alert.root_ts:
            return
        reply = render.render(_template(alert), alert)
        await self.client.chat_update(
            channel=alert.channel_id, ts=alert.root_ts, text=reply.fallback, blocks=reply.blocks
        )

    async def post_thread(self, alert: Alert | GroupAlert) -> None:
        if not alert.channel_id or not alert.root_ts:
            return
        reply = render.render(_template(alert) + "_note", alert)
        await self.client.chat_postMessage(
            channel=alert.channel_id,
            thread_ts=alert.root_ts,
            text=reply.fallback,
            blocks=reply.blocks,
        )

    async def post_chart(self, alert: Alert, png: bytes) -> None:
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
        title = f"{alert.host}: deferred messages by reason class"
        await self.post_file(alert, f"trend-{alert.host}-{stamp}.png", title, png)

    async def post_file(
        self, alert: Alert | GroupAlert, filename: str, title: str, content: bytes
    ) -> None:
        if not alert.channel_id or not alert.root_ts:
            return
        await self.client.files_upload_v2(
            channel=alert.channel_id,
            thread_ts=alert.root_ts,
            content=content,
            filename=filename,
            title=title,
        )


def _template(alert: Alert | GroupAlert) -> str:
    return "alert_group" if isinstance(alert, GroupAlert) else "alert"


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
    if alert.host != GROUP_HOST:  # a group's root is redrawn by the monitor
        await notifier.edit_root(alert)
    await notifier.post_thread(alert)


async def _change(
    services: Services, identity: Identity, incident_id: int, event: Event
) -> Alert | None:
    """Acknowledge or snooze an open incident and audit it, in one transaction."""
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
