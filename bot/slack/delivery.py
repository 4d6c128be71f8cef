"""Getting a result in front of people: placeholder, progress, result in place, files."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages, render
from bot.pipeline import Outcome
from bot.text import escape_mrkdwn

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 2.0
CANNOT_POST = {"not_in_channel", "channel_not_found"}
# What a Web API call raises once the client's own retries (429 after Retry-After, dropped
# connections) are spent: an error answer (5xx included), or no answer at all.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str


async def ephemeral(respond: AsyncRespond, reply: render.Rendered) -> None:
    await respond(text=reply.fallback, blocks=reply.blocks, response_type="ephemeral")


async def post_working(
    client: AsyncWebClient,
    channel: str | None,
    text: str,
    respond: AsyncRespond,
    thread_ts: str | None = None,
) -> Message | None:
    """Post the placeholder that the result will replace; None if we cannot post here."""
    working = messages.WORKING.format(text=escape_mrkdwn(text))
    try:
        response = await client.chat_postMessage(
            channel=channel or "", text=working, thread_ts=thread_ts
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in CANNOT_POST:
            raise
        await respond(text=f"{working}\n{messages.NOT_IN_CHANNEL}", response_type="ephemeral")
        return None
    return Message(str(response["channel"]), str(response["ts"]))


def progress_updater(
    client: AsyncWebClient, message: Message | None
) -> Callable[[str], Awaitable[None]]:
    """Edit the placeholder with progress, at most every PROGRESS_INTERVAL seconds.

    Progress is shown on a best-effort basis: a failed update is logged and the command
    goes on (it may already have changed a queue; failing it now would misreport that).
    """
    last = 0.0

    async def update(text: str) -> None:
        nonlocal last
        if message is None or time.monotonic() - last < PROGRESS_INTERVAL:
            return
        last = time.monotonic()
        await _tried(
            client.chat_update(channel=message.channel, ts=message.ts, text=text), "show progress"
        )

    return update


async def deliver(
    client: AsyncWebClient, respond: AsyncRespond, message: Message | None, outcome: Outcome
) -> None:
    """Errors go only to the asker; results replace the placeholder, long output as a file.

    The command has run and been recorded by now, so Slack failing here must not look like
    the command failing: a result Slack will not put in place goes through the request's
    ``response_url`` instead, and a placeholder or file it refuses is logged and left.
    """
    reply = outcome.reply
    if not outcome.ok:
        await ephemeral(respond, reply)
        if message is not None:
            await _tried(
                client.chat_delete(channel=message.channel, ts=message.ts), "delete the placeholder"
            )
        return
    if message is not None and await _tried(
        client.chat_update(
            channel=message.channel, ts=message.ts, text=reply.fallback, blocks=reply.blocks
        ),
        "show the result",
    ):
        if reply.attachment is not None:
            upload = client.files_upload_v2(
                channel=message.channel,
                thread_ts=message.ts,
                content=reply.attachment.content,
                filename=reply.attachment.filename,
                title=reply.attachment.title,
            )
            await _tried(upload, "attach the file")
        return
    await respond(text=reply.fallback, blocks=reply.blocks, response_type="in_channel")


async def _tried(call: Awaitable[object], what: str) -> bool:
    """Await a Web API call; on a Slack failure log it and return False."""
    try:
        await call
    except SLACK_FAILURES as exc:
        log.warning("Slack did not %s: %s", what, exc)
        return False
    return True
