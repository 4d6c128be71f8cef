"""Alerts in Slack: the root message (edited in place), notes in its thread, the chart,
and the Snooze and Acknowledge buttons.

Diagnose, Summary, Deferred, Flush and Purge… are ``mailq_run_thread`` buttons: the
command runs through the pipeline as the person who clicked, answered in the thread (Purge…
only makes a plan for the top reason class, approved by another person before it runs).
Snooze and Acknowledge are ``bot.monitor.marks.mark`` (the clicker needs ``act`` on the
host; the change and its audit event are one transaction), said in Slack by the monitor's
herald under the alert channel's budget, like every other alert post.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.app.pipeline import refuse
from bot.app.services import LiveServices, Services
from bot.context import Identity
from bot.errors import PermissionDenied
from bot.monitor.alert import Alert, Event, GroupAlert
from bot.monitor.herald import Herald
from bot.monitor.marks import mark
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.slack import payloads
from bot.slack.delivery import ephemeral
from bot.slack.running import tracked

log = logging.getLogger(__name__)
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


def monitor_for(live: LiveServices, client: AsyncWebClient, metrics: Metrics) -> Monitor | None:
    """The monitor, if it is enabled and there is an alert channel to post in."""
    config = live.now().inventory.config
    channel = config.slack.alert_channel
    if not config.monitor.enabled or channel is None:
        log.info("monitoring off (%s)", "disabled" if channel else "no [slack] alert_channel")
        return None
    return Monitor(live, SlackNotifier(client, channel), metrics)


def herald_for(live: LiveServices, client: AsyncWebClient) -> Herald:
    """Who says a click in Slack when this process runs no monitor (monitoring is off): a
    herald of its own, with the same channel budget rules as the monitor's."""
    config = live.now().inventory.config
    channel = config.slack.alert_channel or ""
    herald = Herald(live, SlackNotifier(client, channel), channel, config.monitor)
    live.now().metrics.follow_alerts(herald.courier.counters)
    return herald


def register(app: AsyncApp) -> None:
    app.action(ACK)(tracked(on_alert_button))
    app.action(SNOOZE)(tracked(on_alert_button))


async def on_alert_button(
    ack: AsyncAck,
    body: dict[str, Any],
    context: AsyncBoltContext,
    respond: AsyncRespond,
    services: Services,
    herald: Herald,
) -> None:
    await ack()
    action = body["actions"][0]
    event: Event = "acknowledged" if action["action_id"] == ACK else "snoozed"
    verb = "acknowledge" if event == "acknowledged" else "snooze"
    request = payloads.from_click(body, context, f"{verb} incident {action.get('value', '')}")
    identity = Identity.of(request, await services.groups_of(request.user_id))
    try:
        alert = await mark(services, identity, int(action.get("value", "0")), event)
    except PermissionDenied as exc:  # recorded like every refused command, then shown
        outcome = await refuse(request, services, verb, exc)
        await ephemeral(respond, outcome.reply)
        return
    if alert is not None:  # None: resolved meanwhile, or unknown; nothing to say
        await herald.marked(alert)
