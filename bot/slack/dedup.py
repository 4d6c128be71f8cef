"""Drop Slack deliveries already handled: Events API retries, replayed or repeated payloads.

Each request that Slack can deliver more than once has an id: ``event_id`` for the Events
API (the same on every ``X-Slack-Retry-Num`` retry), ``trigger_id`` for slash commands,
and ``trigger_id`` (or ``action_ts``) + user + ``action_id`` for button clicks. Socket Mode
payloads carry the same ids (Bolt's adapter does not hand the envelope id to the app, and a
redelivered envelope repeats its payload). The first delivery inserts its key into
``slack_deliveries``; an insert that fails on the primary key means "seen", and the request
is acknowledged and dropped. The middleware runs after Bolt's signature check, so unsigned
requests never reach the table. Rows older than ``keep`` are deleted now and then.

If the database cannot be reached, whether the delivery is a repeat cannot be known: the
request goes on marked ``replay_unchecked`` (in the Bolt context), and the pipeline refuses
anything that changes a queue or decides a plan (fail closed), while a read still gets its
answer or the pipeline's own refusal.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.stores.dedup import Deliveries

log = logging.getLogger(__name__)
KEY_LIMIT = 200  # the column's length
Next = Callable[[], Awaitable[None]]


def _key(kind: str, *parts: object) -> str:
    key = ":".join([kind, *(str(p) for p in parts)])
    if len(key) <= KEY_LIMIT:
        return key
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def delivery_key(body: Mapping[str, Any]) -> str | None:
    """The id that a retry or a replay of this delivery would repeat; None if it has none."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return _key("event", body["event_id"])
    if body.get("command") and body.get("trigger_id"):
        return _key("command", body["trigger_id"])
    if body.get("type") == "block_actions" and body.get("actions"):
        action = body["actions"][0]
        click = body.get("trigger_id") or action.get("action_ts")
        user = (body.get("user") or {}).get("id")
        if click and user:
            return _key("action", click, user, action.get("action_id"))
        return None
    if body.get("type") and body.get("trigger_id"):  # view submissions, shortcuts
        return _key(str(body["type"]), body["trigger_id"])
    return None


def retry_number(headers: Mapping[str, Sequence[str]]) -> str | None:
    values = headers.get("x-slack-retry-num")
    return values[0] if values else None


class Deduplicator(Deliveries):
    """The Bolt middleware over the deliveries store."""

    async def middleware(
        self,
        body: dict[str, Any],
        request: AsyncBoltRequest,
        context: AsyncBoltContext,
        next: Next,
    ) -> BoltResponse | None:
        """Bolt global middleware: acknowledge and drop a delivery seen before; mark one
        that could not be checked (``context["replay_unchecked"]``)."""
        key = delivery_key(body)
        first = True if key is None else await self.first_time(key)
        if first is None:
            context["replay_unchecked"] = True
        if first is not False:
            await next()
            return None
        retry = retry_number(request.headers)
        log.info("dropped a repeated Slack delivery %s (retry %s)", key, retry or "-")
        return BoltResponse(status=200, body="")
