"""Settle plans a stopped replica left behind, and tell their channel what happened.

At start-up this replica's own unfinished claims become "outcome unknown" (it just
restarted, so they died with it); then, every ``RECOVERY_INTERVAL``, stale claims of any
replica are settled the same way, expired plans are closed, and approved plans nobody
claimed are run once. A plan run here is posted to the channel it was asked in; if that
post fails (the bot left the channel, Slack out of reach), the failure is logged with the
plan's id and the other plans are still posted. Only claims made before this process
started count as its dead predecessor's, whichever pass settles them: a pass that failed
(the database down at start) and is retried, or a failed post, never settles as "unknown" a
plan this process claimed since and is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.actions import approvals
from bot.actions.rules import PlanView
from bot.app.services import LiveServices, Services
from bot.slack.preflight import api_error
from bot.stores import plans as plans_store
from commands._act import ActionReply

log = logging.getLogger(__name__)
RECOVERY_INTERVAL = 60.0


async def recover_forever(
    live: LiveServices, client: AsyncWebClient, stop: asyncio.Event, started: datetime
) -> None:
    """Recover now, then every ``RECOVERY_INTERVAL``. Until a pass succeeds, plans this
    replica claimed before ``started`` (this process's start) are its dead predecessor's."""
    before: datetime | None = started
    while not stop.is_set():
        services = live.now()
        try:
            ran = await approvals.recover(services, started=before)
        except Exception:
            log.exception("plan recovery failed; retrying in %.0f s", RECOVERY_INTERVAL)
        else:
            before = None  # settled once: what is left is stale claims of any replica
            for plan in ran:  # each plan has run: a failed announcement is not retried
                await _announce(client, services, plan)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECOVERY_INTERVAL)


async def _announce(client: AsyncWebClient, services: Services, plan: PlanView) -> None:
    channel = None
    try:
        channel = await plans_store.channel_of(services.sessions, plan.id)
        if channel is None:
            return
        reply = render.render("action", ActionReply(plan=plan))
        text = f"Plan {plan.id} was approved before a restart and has now run once."
        await client.chat_postMessage(channel=channel, text=text, blocks=reply.blocks)
    except SlackClientError as exc:
        log.error(
            "plan %s ran after a restart, but announcing it in %s failed: %s",
            plan.id,
            channel,
            api_error(exc),
        )
    except Exception:
        log.exception("plan %s ran after a restart, but announcing it failed", plan.id)
