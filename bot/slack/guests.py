"""Who is a guest: Slack's ``is_restricted``/``is_ultra_restricted`` from ``users.info``, cached.

Slash command and button payloads do not say whether the user is a guest, so the account
is looked up (at most once per ``ttl`` per user). A lookup that fails counts as a guest and
is not cached: read-only until Slack answers again. Failing closed beats trusting a guess.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.services import GroupResolver
from bot.auth import GUEST
from bot.slack.preflight import api_error

log = logging.getLogger(__name__)
MAX_CACHED = 10_000
GroupCheck = Callable[[str], Awaitable[bool]]


class GuestCache:
    def __init__(self, client: AsyncWebClient, ttl: float = 300) -> None:
        self._client = client
        self._ttl = ttl
        self._seen: dict[str, tuple[bool, float]] = {}

    async def is_guest(self, user_id: str) -> bool:
        cached = self._seen.get(user_id)
        if cached is not None and time.monotonic() - cached[1] < self._ttl:
            return cached[0]
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info failed (%s): treated as a guest", api_error(exc))
            return True
        user = response.get("user") or {}
        guest = bool(
            user.get("is_restricted") or user.get("is_ultra_restricted") or user.get("deleted")
        )
        if len(self._seen) >= MAX_CACHED:
            self._seen.clear()
        self._seen[user_id] = (guest, time.monotonic())
        return guest


def marking_guests(groups_of: GroupResolver, is_guest: GroupCheck) -> GroupResolver:
    """A group resolver that adds ``auth.GUEST`` to a guest's groups."""

    async def resolve(user_id: str) -> frozenset[str]:
        groups = await groups_of(user_id)
        return groups | {GUEST} if await is_guest(user_id) else groups

    return resolve
