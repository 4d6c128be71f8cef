"""Run the Slack front end: Socket Mode when an app token is set, else HTTP.

Two listeners: the Slack one (``/slack/events`` in HTTP mode, ``/healthz`` always), which
may face the internet, and the Prometheus one (``/metrics`` only: host names and queue
counts), on loopback unless configured otherwise. ``/metrics`` is never on the Slack one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.services import Services
from bot.errors import ConfigError
from bot.monitor.alert import Alert, GroupAlert
from bot.monitor.metrics import Metrics
from bot.monitor.scheduler import Monitor
from bot.slack.alerts import monitor_for
from bot.slack.app import build_app, learn_own_team
from bot.slack.http import AckFirstSocketModeHandler, Endpoint, ThreadedSite
from bot.slack.recovery import recover_forever

log = logging.getLogger(__name__)
ACK_SWITCH_INTERVAL = 0.001  # seconds


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serve(
    services: Services,
    host: str,
    port: int,
    stop: asyncio.Event,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Serve until ``stop``: /healthz always; /slack/events unless in Socket Mode; and
    /metrics on its own listener at ``metrics_at`` (host, port), if given."""
    settings = services.settings
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
    app = build_app(services)
    await learn_own_team(app.client, services)
    endpoint = None
    if settings.slack_signing_secret is not None and not socket_mode:
        endpoint = Endpoint(app, settings.slack_signing_secret.get_secret_value())
    web_app = endpoint.web_app() if endpoint is not None else web.Application()
    web_app.router.add_get("/healthz", healthz)
    metrics = services.metrics
    monitor = _monitor(services, app.client, metrics)
    polling = asyncio.create_task(monitor.run(stop)) if monitor else None
    recovering = asyncio.create_task(recover_forever(services, app.client, stop))
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
            await _socket_mode(app, settings.slack_app_token, stop)  # type: ignore[arg-type]
        else:
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


def _monitor(services: Services, client: AsyncWebClient, metrics: Metrics) -> Monitor | None:
    """The monitor whenever monitoring is on: alerting in Slack if there is an alert
    channel, else metrics only (queue and poll metrics never depend on Slack alerting)."""
    config = services.inventory.config
    if config.monitor.enabled and config.slack.alert_channel is None:
        log.info("monitoring without Slack alerts (no [slack] alert_channel): metrics only")
        return Monitor(services, _NoAlerts(), metrics)
    return monitor_for(services, client, metrics)


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


async def _socket_mode(app: AsyncApp, token: SecretStr, stop: asyncio.Event) -> None:
    handler = AckFirstSocketModeHandler(app, token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    try:
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
