"""Bolt wiring: ``build_app(services)`` registers the listeners; nothing at module level."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages, render
from bot.pipeline import Outcome, Request, execute, prepare
from bot.services import Services
from bot.slack.client import make_client
from bot.slack.usergroups import UserGroupCache
from bot.text import escape_mrkdwn

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 2.0
SLASH_COMMAND = "/mailq"


def build_app(services: Services, client: AsyncWebClient | None = None) -> AsyncApp:
    settings = services.settings
    client = client or make_client(settings)
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        process_before_response=False,
    )
    group_ids = {
        m for g in services.inventory.config.access.grants for m in g.members if m[0] == "S"
    }
    services.groups_of = UserGroupCache(client, group_ids).groups_of

    async def inject(context: dict[str, Any], next: Any) -> None:
        context["services"] = services
        await next()

    app.middleware(inject)
    app.command(SLASH_COMMAND)(on_mailq)
    app.error(on_error)
    return app


async def on_mailq(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    services: Services,
) -> None:
    await ack()
    request = Request(
        source="slack",
        user_id=command["user_id"],
        team_id=command.get("team_id"),
        enterprise_id=command.get("enterprise_id"),
        channel_id=command.get("channel_id"),
        text=command.get("text", "").strip(),
    )
    prepared = await prepare(request, services)
    if isinstance(prepared, Outcome):
        await _ephemeral(respond, prepared.reply)
        return
    message = await _post_working(client, request, respond)
    prepared.context.progress = _progress_updater(client, message)
    outcome = await execute(prepared)
    await _deliver(client, respond, message, outcome)


async def _ephemeral(respond: AsyncRespond, reply: render.Rendered) -> None:
    await respond(text=reply.fallback, blocks=reply.blocks, response_type="ephemeral")


async def _post_working(
    client: AsyncWebClient, request: Request, respond: AsyncRespond
) -> dict[str, str] | None:
    """Post the placeholder that the result will replace; None if we cannot post here."""
    text = messages.WORKING.format(text=escape_mrkdwn(request.text))
    try:
        response = await client.chat_postMessage(channel=request.channel_id or "", text=text)
    except SlackApiError as exc:
        if exc.response.get("error") not in {"not_in_channel", "channel_not_found"}:
            raise
        await respond(text=f"{text}\n{messages.NOT_IN_CHANNEL}", response_type="ephemeral")
        return None
    return {"channel": str(response["channel"]), "ts": str(response["ts"])}


def _progress_updater(client: AsyncWebClient, message: dict[str, str] | None) -> Any:
    last = 0.0

    async def update(text: str) -> None:
        nonlocal last
        if message is None or time.monotonic() - last < PROGRESS_INTERVAL:
            return
        last = time.monotonic()
        await client.chat_update(channel=message["channel"], ts=message["ts"], text=text)

    return update


async def _deliver(
    client: AsyncWebClient,
    respond: AsyncRespond,
    message: dict[str, str] | None,
    outcome: Outcome,
) -> None:
    reply = outcome.reply
    if not outcome.ok:
        if message is not None:
            await client.chat_delete(channel=message["channel"], ts=message["ts"])
        await _ephemeral(respond, reply)
    elif message is None:
        await respond(text=reply.fallback, blocks=reply.blocks, response_type="in_channel")
    else:
        await client.chat_update(
            channel=message["channel"], ts=message["ts"], text=reply.fallback, blocks=reply.blocks
        )


async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
    """The funnel for anything a listener did not handle: log it, give the user a reference."""
    ref = f"{int(time.time()):x}"
    log.error("unhandled error (reference %s)", ref, exc_info=error)
    if body.get("response_url"):
        await _ephemeral(respond, render.crash(ref))


async def learn_own_team(client: AsyncWebClient, services: Services) -> None:
    """Trust the workspace the bot is installed in (besides ``access.team_ids``)."""
    identity = await client.auth_test()
    services.allowed_teams.add(str(identity["team_id"]))
