"""HTTP mode's ``/slack/events``: a slash command or a click is acknowledged before any work.

Slack waits 3 seconds for the answer to a slash command or a button click, then shows the
user a timeout. Our listeners answer both with an empty 200 (``ack()`` with no content)
and do their work afterwards, so once the request's signature checks out this endpoint
sends that answer itself and hands the request to Bolt in a task of its own. Nothing the
request will do waits in front of the ack: not the de-duplication write, not the identity
look-ups, not the command, and not whatever else the process is busy with (polls, alert
posts, the database), beyond the request's own turn on the event loop.

Everything else (a bad or missing signature, Events API callbacks, URL verification,
view submissions, options) goes through Bolt as before, and Bolt's answer is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)
PATH = "/slack/events"
FORM = "application/x-www-form-urlencoded"


class Endpoint:
    """``/slack/events`` for ``app``, acknowledging slash commands and clicks first."""

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self.app = app
        self.verifier = SignatureVerifier(signing_secret)
        self.running: set[asyncio.Task[None]] = set()

    def web_app(self) -> web.Application:
        web_app = web.Application()
        web_app.router.add_post(PATH, self.handle)
        return web_app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        if self.acknowledged_first(body, request.headers):
            task = asyncio.create_task(self._dispatch(bolt_request))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
            return web.Response(status=200)
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def acknowledged_first(self, body: str, headers: Mapping[str, str]) -> bool:
        """A signed slash command or ``block_actions`` click (form-encoded, as Slack
        sends them): the ack is an empty 200 whatever happens next."""
        if not headers.get("Content-Type", "").startswith(FORM):
            return False
        if not self.verifier.is_valid_request(body, dict(headers)):
            return False  # Bolt answers 401 and logs it, as before
        form = parse_qs(body, max_num_fields=64)
        if form.get("command"):
            return True
        payload = form.get("payload")
        if not payload:
            return False
        try:
            kind = orjson.loads(payload[0]).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            return False
        return bool(kind == "block_actions")

    async def _dispatch(self, request: AsyncBoltRequest) -> None:
        try:
            response = await self.app.async_dispatch(request)
        except Exception:
            log.exception("a Slack request failed after it was acknowledged")
            return
        if response.status >= 400:
            log.warning("a Slack request acknowledged first ended with %d", response.status)

    async def drain(self, grace: float = 10.0) -> None:
        """Let requests already acknowledged finish (at most ``grace`` seconds), then
        cancel what is left."""
        if not self.running:
            return
        _done, pending = await asyncio.wait(set(self.running), timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)
