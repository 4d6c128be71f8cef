"""A slash command or a click is acknowledged before any work: HTTP mode's ``/slack/events``
(and, by the same rule, Socket Mode's envelopes).

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
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Mapping
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.running import DRAIN_GRACE, Running

log = logging.getLogger(__name__)
PATH = "/slack/events"
FORM = "application/x-www-form-urlencoded"


class Endpoint:
    """``/slack/events`` for ``app``, acknowledging slash commands and clicks first.

    Made on the main event loop, where Bolt and everything it calls run; ``handle`` may run
    on another loop (``ThreadedSite``) and hands each request to the main one."""

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self.app = app
        self.verifier = SignatureVerifier(signing_secret)
        self.main = asyncio.get_running_loop()
        self.running = Running()  # requests acknowledged first, being dispatched

    def web_app(self) -> web.Application:
        web_app = web.Application()
        web_app.router.add_post(PATH, self.handle)
        return web_app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        query, headers = request.query_string, dict(request.headers)
        if self.acknowledged_first(body, request.headers):
            self.main.call_soon_threadsafe(self._start, body, query, headers)
            return web.Response(status=200)
        dispatched = asyncio.run_coroutine_threadsafe(
            self.app.async_dispatch(_bolt_request(body, query, headers)), self.main
        )
        return await to_aiohttp_response(await asyncio.wrap_future(dispatched))

    def _start(self, body: str, query: str, headers: dict[str, str]) -> None:
        task = self.main.create_task(self._dispatch(_bolt_request(body, query, headers)))
        self.running.add(task)

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

    async def drain(self, grace: float = DRAIN_GRACE) -> None:
        """Let requests already acknowledged finish (at most ``grace`` seconds), then
        cancel what is left."""
        await self.running.drain(grace)


def _bolt_request(body: str, query: str, headers: dict[str, str]) -> AsyncBoltRequest:
    return AsyncBoltRequest(body=body, query=query, headers=headers)  # type: ignore[arg-type]


class ThreadedSite:
    """Serve an aiohttp application from a thread with an event loop of its own.

    The Slack listener runs this way: however busy the main loop is (polls, alert posts,
    commands, renders), a request is read, its signature checked and its ack sent on this
    thread's loop, which needs the interpreter only for a fraction of a millisecond per
    request (the main thread hands it over at least every ``sys.getswitchinterval()``).
    """

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        """Listen (raising what binding raised) and serve until ``cleanup``."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="slack-listener", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(started)

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException as exc:
            await runner.cleanup()
            started.set_exception(exc)
            return
        self.port = int(runner.addresses[0][1])
        started.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def cleanup(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join)
        self._thread = None


class AckFirstSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode with the same rule as ``Endpoint``: a slash command or ``block_actions``
    click is acknowledged (its envelope) before Bolt sees it, so its ack never waits for
    the de-duplication write or anything after it; other envelopes go through Bolt as
    before, Bolt's answer being sent."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        payload = req.payload if isinstance(req.payload, dict) else {}
        first = req.type == "slash_commands" or (
            req.type == "interactive" and payload.get("type") == "block_actions"
        )
        if not first:
            await super().handle(client, req)  # type: ignore[arg-type]
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception:
            log.exception("a Slack request failed after it was acknowledged")
            return
        if response.status >= 400:
            log.warning("a Slack request acknowledged first ended with %d", response.status)
