"""Bolt wiring: ``build_app(live)`` registers the listeners; nothing at module level.

Each request gets ``live.now()``, the services as they are when it arrives (frozen), and
the herald that says alert button clicks in Slack (the monitor's, when this process runs
one).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages, render
from bot.app.pipeline import Outcome, execute, prepare
from bot.app.services import LiveServices, Services
from bot.context import Request
from bot.errors import MailqbotError
from bot.monitor.herald import Herald
from bot.slack import alerts, payloads
from bot.slack.client import make_client
from bot.slack.dedup import Deduplicator
from bot.slack.delivery import Message, ProgressUpdater, deliver, ephemeral, post_working, restore
from bot.slack.guests import GuestCache, marking_guests
from bot.slack.preflight import missing_scope
from bot.slack.running import tracked
from bot.slack.usergroups import UserGroupCache

log = logging.getLogger(__name__)
SLASH_COMMAND = "/mailq"


def build_app(
    live: LiveServices, client: AsyncWebClient | None = None, herald: Herald | None = None
) -> AsyncApp:
    services = live.now()
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
    live.update(
        groups_of=marking_guests(
            UserGroupCache(client, group_ids).groups_of, GuestCache(client).is_guest
        )
    )
    said_by = herald or alerts.herald_for(live, client)

    async def inject(context: dict[str, Any], next: Any) -> None:
        context["services"] = live.now()
        context["herald"] = said_by
        await next()

    app.middleware(inject)
    app.middleware(Deduplicator(services.sessions).middleware)
    # Every listener is registered ``tracked``: a stop lets it finish (bot/slack/running.py).
    app.command(SLASH_COMMAND)(tracked(on_mailq))
    app.action(re.compile(r"^mailq_run_(replace|thread)$"))(tracked(on_run_button))
    alerts.register(app)
    app.error(on_error)
    return app


async def on_mailq(
    ack: AsyncAck,
    command: dict[str, Any],
    context: AsyncBoltContext,
    client: AsyncWebClient,
    respond: AsyncRespond,
    services: Services,
) -> None:
    await ack()
    await _run(payloads.from_command(command, context), services, client, respond)


async def on_run_button(
    ack: AsyncAck,
    body: dict[str, Any],
    context: AsyncBoltContext,
    client: AsyncWebClient,
    respond: AsyncRespond,
    services: Services,
) -> None:
    """A button that runs a command (a next page, a follow-up) as the person who clicked.

    The button's value is the command text; permission is checked now, for the clicker.
    ``mailq_run_replace`` puts the result in place of the message, ``mailq_run_thread``
    answers in its thread.
    """
    await ack()
    action = body["actions"][0]
    request = payloads.from_click(body, context, str(action.get("value", "")))
    container = body.get("container", {})
    if action["action_id"] == "mailq_run_replace" and container.get("message_ts"):
        target = Message(str(request.channel_id), str(container["message_ts"]))
        original = body.get("message") or {}
        await _run(request, services, client, respond, existing=target, original=original)
    else:
        await _run(request, services, client, respond, thread_ts=container.get("message_ts"))


async def _run(
    request: Request,
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    existing: Message | None = None,
    thread_ts: str | None = None,
    original: dict[str, Any] | None = None,
) -> None:
    prepared = await prepare(request, services)
    if isinstance(prepared, Outcome):
        await ephemeral(respond, prepared.reply)
        return
    message = existing or await post_working(
        client, request.channel_id, request.text, respond, thread_ts
    )
    if message is not None:
        link = message_link(services.slack_url, message)
        cleaned = prepared.context.request  # as the pipeline prepared it (NUL dropped)
        prepared.context.request = dataclasses.replace(cleaned, message_link=link)
    progress = ProgressUpdater(client, message)
    prepared.context.progress = progress
    outcome = await execute(prepared)
    await deliver(client, respond, message, outcome, request.user_id, placeholder=existing is None)
    if (
        existing is not None
        and original
        and progress.edited
        and (not outcome.ok or outcome.reply.private)
    ):  # the result did not replace the button's message: take progress off it again
        await restore(client, existing, original)


async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
    """The funnel for anything a listener did not handle: log it, give the user a reference."""
    ref = f"{int(time.time()):x}"
    scope = missing_scope(error)
    if scope is not None:  # the app was installed without a scope this call needs
        method = _api_method(error)
        log.error(
            "Slack refused %s: missing scope %s (reference %s); add it under OAuth & "
            "Permissions and reinstall the app",
            method, scope, ref, extra={"scope": scope, "reason": "missing_scope"},
        )  # fmt: skip
        if body.get("response_url"):
            text = messages.MISSING_SCOPE.format(method=method, scope=scope, ref=ref)
            await ephemeral(respond, render.error(MailqbotError(text)))
        return
    log.error("unhandled error (reference %s)", ref, exc_info=error)
    if body.get("response_url"):
        await ephemeral(respond, render.crash(ref))


def _api_method(error: Exception) -> str:
    """The Web API method a ``SlackApiError`` came from (``chat.postMessage``)."""
    url = str(getattr(getattr(error, "response", None), "api_url", "") or "")
    return url.rstrip("/").rsplit("/", 1)[-1] or "a Web API"


async def learn_own_team(client: AsyncWebClient, live: LiveServices) -> None:
    """Trust the workspace the bot is installed in (besides ``access.team_ids``)."""
    remember_team(await client.auth_test(), live)


def remember_team(identity: Any, live: LiveServices) -> None:
    """From ``auth.test``'s answer: the bot's own team, and the workspace's address."""
    live.update(
        allowed_teams=live.now().allowed_teams | {str(identity["team_id"])},
        slack_url=str(identity.get("url") or "") or None,
    )


def message_link(workspace_url: str | None, message: Message) -> str | None:
    """The message's permalink (``https://WORKSPACE/archives/CHANNEL/pTS``), if the
    workspace's address is known."""
    if not workspace_url:
        return None
    ts = message.ts.replace(".", "")
    return f"{workspace_url.rstrip('/')}/archives/{message.channel}/p{ts}"
