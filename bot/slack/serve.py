"""Run the Slack front end: Socket Mode when an app token is set, else HTTP.

Two listeners: the Slack one (``/slack/events`` in HTTP mode, ``/healthz`` always), which
may face the internet, and the Prometheus one (``/metrics`` only: host names and queue
counts), on loopback unless configured otherwise. ``/metrics`` is never on the Slack one.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app.services import Services
from bot.errors import ConfigError
from bot.monitor.metrics import Metrics
from bot.slack.alerts import monitor_for
from bot.slack.app import build_app, learn_own_team
from bot.slack.recovery import recover_forever

log = logging.getLogger(__name__)


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
    web_app = app.web_app(path="/slack/events") if not socket_mode else web.Application()
    web_app.router.add_get("/healthz", healthz)
    metrics = Metrics(services.sessions)
    monitor = monitor_for(services, app.client, metrics)
    polling = asyncio.create_task(monitor.run(stop)) if monitor else None
    recovering = asyncio.create_task(recover_forever(services, app.client, stop))
    # What start-up built (modules, templates, the app) lives as long as the process: keep it
    # out of every later garbage collection, which then only walks per-request objects.
    gc.freeze()
    runners: list[web.AppRunner] = []
    try:
        what = "health only; Slack via Socket Mode" if socket_mode else "/slack/events"
        runners.append(await _listen(web_app, host, port, what))
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
        await recovering
        for runner in runners:
            await runner.cleanup()


async def _listen(app: web.Application, host: str, port: int, what: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except (OSError, OverflowError) as exc:
        await runner.cleanup()
        raise ConfigError(
            f"Cannot listen on {host}:{port} for {what}: {exc}. Choose another address or "
            "port (`mailqbot serve --host/--port`; for /metrics `--metrics-host/--metrics-port` "
            "or MAILQBOT_METRICS_HOST/PORT, port 0 for no metrics listener)."
        ) from None
    log.info("listening on http://%s:%d (%s)", host, port, what)
    return runner


async def _socket_mode(app: AsyncApp, token: SecretStr, stop: asyncio.Event) -> None:
    handler = AsyncSocketModeHandler(app, token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    try:
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
