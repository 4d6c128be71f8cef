"""A Slack payload turned into the pipeline's ``Request``, in one place.

Slash commands and button clicks carry who (user, team, enterprise), where (channel) and
what (the command text, or the button's value) in different shapes; every listener builds
its ``Request`` here, so every request carries the same identity fields. The Bolt context
adds ``replay_unchecked`` when the delivery could not be checked against earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.context import Request


def slack_text(text: str) -> str:
    """Undo the only escaping Slack applies to typed text and what our templates apply to
    button values (``&``, ``<``, ``>``), so ``sender=<>`` arrives as typed. (NUL is dropped
    by the pipeline, for every front end.)"""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def from_command(command: Mapping[str, Any], context: Mapping[str, Any]) -> Request:
    """A slash command's request."""
    return Request(
        source="slack",
        user_id=str(command["user_id"]),
        team_id=command.get("team_id"),
        enterprise_id=command.get("enterprise_id"),
        channel_id=command.get("channel_id"),
        text=slack_text(str(command.get("text", ""))),
        replay_unchecked=bool(context.get("replay_unchecked")),
    )


def from_click(body: Mapping[str, Any], context: Mapping[str, Any], text: str) -> Request:
    """The request of a button click (``block_actions``) that runs ``text``."""
    user = body["user"]
    return Request(
        source="slack",
        user_id=str(user["id"]),
        team_id=user.get("team_id") or (body.get("team") or {}).get("id"),
        enterprise_id=(body.get("enterprise") or {}).get("id"),
        channel_id=(body.get("channel") or {}).get("id"),
        text=slack_text(text),
        replay_unchecked=bool(context.get("replay_unchecked")),
    )
