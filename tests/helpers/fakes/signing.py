"""Build and sign requests the way Slack sends them to an HTTP-mode app."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
DEFAULT_RESPONSE_URL = "https://hooks.slack.com/commands/T0LAB/1000000001/fake"
APP_ID = "A0LAB"


def sign(
    secret: str, body: bytes, timestamp: int | None = None, *, content_type: str = FORM
) -> dict[str, str]:
    """Headers for `body`: v0= HMAC-SHA256(secret, "v0:{ts}:{body}"), plus Content-Type."""
    ts = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


def new_trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


class SlashOptions(TypedDict, total=False):
    user_id: str
    team_id: str
    channel_id: str
    command: str
    response_url: str
    trigger_id: str | None
    enterprise_id: str | None


class ActionOptions(TypedDict, total=False):
    user_id: str
    team_id: str
    channel_id: str
    message_ts: str
    block_id: str
    response_url: str
    message: dict[str, Any] | None
    enterprise_id: str | None


def slash_command_payload(
    text: str,
    *,
    user_id: str = "U0VIEWER",
    team_id: str = "T0LAB",
    channel_id: str = "C0LAB",
    command: str = "/mailq",
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
) -> dict[str, str]:
    """Slash command fields as a dict: the Socket Mode envelope payload."""
    payload = {
        "token": "fake-verification-token",
        "team_id": team_id,
        "team_domain": "lab",
        "channel_id": channel_id,
        "channel_name": "ops",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if enterprise_id is not None:
        payload |= {"enterprise_id": enterprise_id, "enterprise_name": "Lab Grid"}
    return payload


def slash_command_body(text: str, **kwargs: Unpack[SlashOptions]) -> bytes:
    """The form-encoded body Slack POSTs for a slash command (same keywords as above)."""
    return urlencode(slash_command_payload(text, **kwargs)).encode()


def block_actions_payload(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0VIEWER",
    team_id: str = "T0LAB",
    channel_id: str = "C0LAB",
    message_ts: str = "1764300000.000100",
    block_id: str = "actions",
    response_url: str = "https://hooks.slack.com/actions/T0LAB/1000000002/fake",
    message: dict[str, Any] | None = None,
    enterprise_id: str | None = None,
) -> dict[str, Any]:
    """A button click: the Socket Mode "interactive" payload.

    `message` (e.g. from FakeSlack.messages) replaces the default empty message.
    """
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "fake-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": new_trigger_id(),
        "team": {"id": team_id, "domain": "lab"},
        "enterprise": None if enterprise_id is None else {"id": enterprise_id, "name": "Lab"},
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "ops"},
        "message": message or {"type": "message", "ts": message_ts, "text": "", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "action_ts": now,
            }
        ],
    }


def block_actions_body(action_id: str, value: str, **kwargs: Unpack[ActionOptions]) -> bytes:
    """The `payload=<url-encoded JSON>` body Slack POSTs for a button click."""
    payload = block_actions_payload(action_id, value, **kwargs)
    return urlencode({"payload": json.dumps(payload)}).encode()
