"""Before serving: Slack takes both tokens, and the bot token has every scope it needs.

Each failure is a ``MailqbotError`` whose one line (``bot.startup``) names the problem and
what to do: a rejected bot or app token, missing scopes (``auth.test``'s
``x-oauth-scopes`` against ``bot.startup.REQUIRED_SCOPES``, which a test holds equal to
app-manifest.yml), or Slack out of reach. ``api_error`` words a Web API error for the log
and the user, naming the scope a ``missing_scope`` answer needs.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import startup
from bot.errors import ServiceUnavailable
from bot.settings import Settings

log = logging.getLogger(__name__)
_UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)


async def check_bot_token(client: AsyncWebClient, settings: Settings) -> AsyncSlackResponse:
    """``auth.test`` with the bot token: its answer (team, URL), or the line to stop with."""
    try:
        identity = await client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        if error in startup.REJECTED:
            raise startup.bot_token_rejected(error) from None
        raise ServiceUnavailable(f"Slack's auth.test failed ({api_error(exc)}).") from None
    except _UNREACHABLE as exc:
        raise startup.slack_unreachable(settings.api_url, startup.reason(exc)) from None
    granted = _header(identity.headers, "x-oauth-scopes")
    if granted is not None:
        have = {scope.strip() for scope in granted.split(",")}
        missing = [scope for scope in startup.REQUIRED_SCOPES if scope not in have]
        if missing:
            raise startup.scopes_missing(missing)
    else:
        log.warning("Slack did not list the token's scopes (no x-oauth-scopes header)")
    return identity


async def check_app_token(client: AsyncWebClient, app_token: str, settings: Settings) -> str:
    """``apps.connections.open`` with the app token (Socket Mode): the websocket URL to
    connect to, or (refused) the line to stop with, instead of retrying forever."""
    try:
        opened = await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        if error in startup.REJECTED or error == "not_allowed_token_type":
            raise startup.app_token_rejected(error) from None
        raise ServiceUnavailable(
            f"Slack's apps.connections.open failed ({api_error(exc)})."
        ) from None
    except _UNREACHABLE as exc:
        raise startup.slack_unreachable(settings.api_url, startup.reason(exc)) from None
    return str(opened["url"])


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def api_error(exc: SlackClientError) -> str:
    """``missing_scope (needs users:read)``, ``channel_not_found``, or the client's error."""
    if not isinstance(exc, SlackApiError):
        return type(exc).__name__
    error = str(exc.response.get("error"))
    needed = exc.response.get("needed")
    return f"{error} (needs {needed})" if error == "missing_scope" and needed else error


def missing_scope(exc: BaseException) -> str | None:
    """The scope a ``missing_scope`` answer names, if ``exc`` is one."""
    if isinstance(exc, SlackApiError) and exc.response.get("error") == "missing_scope":
        return str(exc.response.get("needed") or "unknown")
    return None
