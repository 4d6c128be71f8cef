"""Run the Slack front end: Socket Mode when an app token is set, else HTTP.

Two listeners: the Slack one (``/slack/events`` in HTTP mode, ``/healthz`` always), which
may face the internet, and the Prometheus one (``/metrics`` only: host names and queue
counts), on loopback unless configured otherwise. ``/metrics`` is never on the Slack one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import startup
from bot.actions import approvals
from bot.app.services import LiveServices
from bot.db.session import is_reachable
from bot.errors import ConfigError
from bot.monitor.alert import Alert, GroupAlert
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.slack import preflight
from bot.slack.alerts import herald_for, monitor_for
from bot.slack.app import build_app, remember_team
from bot.slack.client import make_client
from bot.slack.http import AckFirstSocketModeHandler, Endpoint, ThreadedSite
from bot.slack.recovery import recover_forever
from bot.slack.running import LISTENERS

log = logging.getLogger(__name__)
ACK_SWITCH_INTERVAL = 0.001  # seconds


@dataclass
class Health:
    """What ``/healthz`` reports: ready (200) only if the database answers, Slack is
    connected, and (when this process polls hosts) a poll succeeded recently."""

    database: Callable[[], Awaitable[bool]]
    slack: Callable[[], Awaitable[bool]]
    monitor: Monitor | None = None
    started: float = 0.0
    # The loop that owns the database engine and the Slack clients: /healthz is served from
    # the Slack listener's own thread, and asks this loop to run the checks.
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def poll_age(self) -> float | None:
        """Seconds since the last successful poll (since start, if none yet)."""
        if self.monitor is None:
            return None
        return time.monotonic() - (self.monitor.last_success or self.started)

    def poll_limit(self) -> float:
        """A last good poll older than this is stale: three of the longest intervals."""
        assert self.monitor is not None
        config = self.monitor.config
        longest = max([config.interval, *(g.interval or 0 for g in config.groups.values())])
        return 3 * longest + 30

    async def checks(self) -> tuple[bool, bool]:
        return await self.database(), await self.slack()

    async def handler(self, _request: web.Request) -> web.Response:
        if self.loop is None or self.loop is asyncio.get_running_loop():
            database, slack = await self.checks()
        else:
            asked = asyncio.run_coroutine_threadsafe(self.checks(), self.loop)
            database, slack = await asyncio.wrap_future(asked)
        age = self.poll_age()
        polling = (
            age is None
            or not self.monitor
            or not self.monitor.leases.held
            or age <= self.poll_limit()
        )
        ready = database and slack and polling
        body = {
            "ok": ready,
            "database": database,
            "slack": slack,
            "last_poll_age": None if age is None else round(age, 1),
            "polling": polling,
        }
        return web.json_response(body, status=200 if ready else 503)


async def serve(
    live: LiveServices,
    host: str,
    port: int,
    stop: asyncio.Event,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Serve until ``stop``: /healthz always; /slack/events unless in Socket Mode; and
    /metrics on its own listener at ``metrics_at`` (host, port), if given."""
    settings = live.now().settings
    if settings.slack_bot_token is None:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set. Create the app from app-manifest.yml and export "
            "its bot token (xoxb-...); or try `mailqbot console --demo` without Slack."
        )
    socket_mode = settings.slack_app_token is not None
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError(
            "HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)."
        )
    client = make_client(settings)
    metrics = live.now().metrics
    monitor = _monitor(live, client, metrics)
    # who says alert button clicks: the monitor's herald, or one of this process's own
    herald = monitor.herald if monitor else herald_for(live, client)
    app = build_app(live, client, herald)
    identity = await preflight.check_bot_token(app.client, settings)
    socket = SocketState()
    if settings.slack_app_token is not None:
        token = settings.slack_app_token.get_secret_value()
        socket.first_url = await preflight.check_app_token(app.client, token, settings)
    remember_team(identity, live)
    database = functools.partial(is_reachable, live.now().sessions)
    health = Health(
        database, socket.connected, started=time.monotonic(), loop=asyncio.get_running_loop()
    )
    endpoint = None
    if settings.slack_signing_secret is not None and not socket_mode:
        endpoint = Endpoint(app, settings.slack_signing_secret.get_secret_value())
    web_app = endpoint.web_app() if endpoint is not None else web.Application()
    web_app.router.add_get("/healthz", health.handler)
    health.monitor = monitor
    polling = asyncio.create_task(monitor.run(stop)) if monitor else None
    # this process's start, before any click can claim a plan: claims older than this with
    # this replica's name are a dead predecessor's
    started = await approvals.start_mark(live.now())
    recovering = asyncio.create_task(recover_forever(live, app.client, stop, started))
    watching = asyncio.create_task(metrics.watch(stop)) if metrics_at else None
    # What start-up built (modules, templates, the app) lives as long as the process: keep it
    # out of every later garbage collection, which then only walks per-request objects.
    gc.freeze()
    # The Slack listener's thread asks for the interpreter to ack; the main thread hands it
    # over after at most this long (Python's default is 5 ms).
    sys.setswitchinterval(ACK_SWITCH_INTERVAL)
    runners: list[web.AppRunner | ThreadedSite] = []
    try:
        what = "health only; Slack via Socket Mode" if socket_mode else "/slack/events"
        runners.append(await _listen(web_app, host, port, what, threaded=True))
        if metrics_at is not None:
            metrics_app = web.Application()
            metrics_app.router.add_get("/metrics", metrics.handler)
            runners.append(await _listen(metrics_app, *metrics_at, "/metrics"))
        if socket_mode:
            app_token = settings.slack_app_token
            assert app_token is not None
            await _socket_mode(app, app_token, stop, socket, settings.slack_give_up)
        else:
            socket.up = True  # HTTP mode: Slack calls us; auth.test answered
            await stop.wait()
    finally:
        stop.set()
        if polling is not None:
            await polling
        if watching is not None:
            await watching
        await recovering
        if endpoint is not None:
            await endpoint.drain()
        await LISTENERS.drain()  # commands acked before the stop
        await herald.courier.drain()  # root edits asked for by the last clicks
        for runner in runners:
            await runner.cleanup()


class _NoAlerts:
    """The notifier when there is no alert channel: the monitor still polls, records and
    exports its metrics; incidents are kept, and nothing is posted."""

    channel = ""

    async def post_root(self, alert: Alert | GroupAlert) -> tuple[str, str] | None:
        return None

    async def edit_root(self, alert: Alert | GroupAlert) -> None:
        return None

    async def post_thread(self, alert: Alert | GroupAlert) -> None:
        return None

    async def post_chart(self, alert: Alert, png: bytes) -> None:
        return None

    async def post_file(self, alert: Any, filename: str, title: str, content: bytes) -> None:
        return None


def _monitor(live: LiveServices, client: AsyncWebClient, metrics: Metrics) -> Monitor | None:
    """The monitor whenever monitoring is on: alerting in Slack if there is an alert
    channel, else metrics only (queue and poll metrics never depend on Slack alerting)."""
    config = live.now().inventory.config
    if config.monitor.enabled and config.slack.alert_channel is None:
        log.info("monitoring without Slack alerts (no [slack] alert_channel): metrics only")
        return Monitor(live, _NoAlerts(), metrics)
    return monitor_for(live, client, metrics)


async def _listen(
    app: web.Application, host: str, port: int, what: str, *, threaded: bool = False
) -> web.AppRunner | ThreadedSite:
    """Serve ``app`` at ``host:port``; ``threaded``: from a thread of its own (the Slack
    listener, whose acks must not wait for the main loop)."""
    runner: web.AppRunner | ThreadedSite
    try:
        if threaded:
            runner = ThreadedSite(app, host, port)
            await runner.start()
        else:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
            except BaseException:
                await runner.cleanup()
                raise
    except (OSError, OverflowError) as exc:
        raise ConfigError(
            f"Cannot listen on {host}:{port} for {what}: {exc}. Choose another address or "
            "port (`mailqbot serve --host/--port`; for /metrics `--metrics-host/--metrics-port` "
            "or MAILQBOT_METRICS_HOST/PORT, port 0 for no metrics listener)."
        ) from None
    log.info("listening on http://%s:%d (%s)", host, port, what)
    return runner


def _one_line(record: logging.LogRecord) -> bool:
    """The Socket Mode client logs each failed reconnect with a traceback: keep the line."""
    if record.exc_info and record.levelno >= logging.ERROR:
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


@dataclass
class SocketState:
    """Whether Slack is connected: Socket Mode's live connection, or HTTP mode started."""

    up: bool = False
    handler: AckFirstSocketModeHandler | None = None
    first_url: str | None = None  # from the start-up check: the first connection uses it

    async def connected(self) -> bool:
        if self.handler is None:
            return self.up
        return bool(await self.handler.client.is_connected())


async def _socket_mode(
    app: AsyncApp, token: SecretStr, stop: asyncio.Event, state: SocketState, give_up: float
) -> None:
    """Stay connected until ``stop``; after ``give_up`` seconds without a connection (the
    client's own retries included), stop the process with one line."""
    socket_log = logging.getLogger("bot.slack.socket_mode")
    socket_log.addFilter(_one_line)
    handler = AckFirstSocketModeHandler(app, token.get_secret_value(), logger=socket_log)
    state.handler = handler
    handler.client.wss_uri = state.first_url
    connecting = asyncio.create_task(handler.connect_async())  # type: ignore[no-untyped-call]
    down_since: float | None = time.monotonic()
    try:
        while not stop.is_set():
            if connecting.done() and await state.connected():
                if down_since is not None:
                    log.info("connected to Slack in Socket Mode")
                down_since = None
            elif down_since is None:
                down_since = time.monotonic()
                log.warning("Socket Mode connection lost; reconnecting for up to %gs", give_up)
            elif time.monotonic() - down_since > give_up:
                raise startup.socket_mode_gave_up(give_up)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await handler.close_async()  # type: ignore[no-untyped-call]
