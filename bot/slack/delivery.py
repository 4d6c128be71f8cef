"""Getting a result in front of people: placeholder, progress, result in place, files.

A ``private`` result (a message body) is shown only to the person who asked, whatever
command made it: as an ephemeral reply in the channel, and, because ephemeral messages
cannot carry files, its file goes to the asker's direct messages with the app. The public
placeholder is deleted and never shows the result; nothing of it goes to a thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages, render
from bot.app.pipeline import Outcome
from bot.text import escape_mrkdwn

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 2.0
MAX_BLOCKS = 50  # per message
CANNOT_POST = {"not_in_channel", "channel_not_found"}
# What a Web API call raises once the client's own retries (429 after Retry-After, dropped
# connections) are spent: an error answer (5xx included), or no answer at all.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str


async def ephemeral(respond: AsyncRespond, reply: render.Rendered) -> None:
    """Only the asker sees it; a button's public message is never replaced by it."""
    await respond(
        text=reply.fallback, blocks=reply.blocks, response_type="ephemeral", replace_original=False
    )


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


class ProgressUpdater:
    """Edit the placeholder with progress, at most every PROGRESS_INTERVAL seconds.

    Progress is shown on a best-effort basis: a failed update is logged and the command
    goes on (it may already have changed a queue; failing it now would misreport that).
    ``edited`` says whether it changed the message at all.
    """

    def __init__(self, client: AsyncWebClient, message: Message | None) -> None:
        self.client = client
        self.message = message
        self.last = 0.0
        self.edited = False

    async def __call__(self, text: str) -> None:
        message = self.message
        if message is None or time.monotonic() - self.last < PROGRESS_INTERVAL:
            return
        self.last = time.monotonic()
        self.edited = True
        update = self.client.chat_update(channel=message.channel, ts=message.ts, text=text)
        await _tried(update, "show progress")


async def restore(client: AsyncWebClient, message: Message, original: dict[str, Any]) -> None:
    """Put a message back as it was (its text and blocks from the click's payload)."""
    text = str(original.get("text") or "")
    blocks = original.get("blocks") or []
    update = client.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)
    await _tried(update, "restore the message")


async def deliver(
    client: AsyncWebClient,
    respond: AsyncRespond,
    message: Message | None,
    outcome: Outcome,
    asker: str,
    *,
    placeholder: bool = True,
) -> None:
    """Errors and private results go only to the ``asker``; other results replace
    ``message``, long output as a file in its thread.

    ``placeholder`` False: ``message`` is the one a button was on; it is replaced by a
    public result but kept as it is otherwise. The command has run and been recorded by
    now, so Slack failing here must not look like the command failing: a result Slack will
    not put in place goes through the request's ``response_url`` instead, and a
    placeholder or file it refuses is logged and left.
    """
    reply = outcome.reply
    if not outcome.ok or reply.private:
        if outcome.ok:
            await to_asker_only(client, respond, asker, reply)
        else:
            await ephemeral(respond, reply)
        if message is not None and placeholder:
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


async def to_asker_only(
    client: AsyncWebClient, respond: AsyncRespond, asker: str, reply: render.Rendered
) -> None:
    """An ephemeral reply; its file, if any, in the asker's direct messages with the app."""
    blocks = reply.blocks
    if reply.attachment is not None:
        sent = await _direct_file(client, asker, reply.attachment)
        note = messages.PRIVATE_FILE_SENT if sent else messages.PRIVATE_FILE_NOT_SENT
        if len(blocks) < MAX_BLOCKS:
            blocks = [*blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]
    await ephemeral(respond, render.Rendered(reply.text, blocks, private=True))


async def _direct_file(client: AsyncWebClient, user: str, attachment: render.Attachment) -> bool:
    """Post ``attachment`` in the app's direct messages with ``user`` (a user ID as the
    channel opens them with ``chat:write`` alone; the answer names the DM's channel)."""
    try:
        opened = await client.chat_postMessage(
            channel=user, text=messages.PRIVATE_FILE_DM.format(title=attachment.title)
        )
        await client.files_upload_v2(
            channel=str(opened["channel"]),
            content=attachment.content,
            filename=attachment.filename,
            title=attachment.title,
        )
    except SLACK_FAILURES as exc:
        log.warning("Slack did not take a private file to the asker's DMs: %s", exc)
        return False
    return True


async def _tried(call: Awaitable[object], what: str) -> bool:
    """Await a Web API call; on a Slack failure log it and return False."""
    try:
        await call
    except SLACK_FAILURES as exc:
        log.warning("Slack did not %s: %s", what, exc)
        return False
    return True
