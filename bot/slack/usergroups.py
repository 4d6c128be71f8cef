"""Which Slack user groups a user is in, from ``usergroups.users.list``, cached."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.preflight import api_error

log = logging.getLogger(__name__)


class UserGroupCache:
    """Members of the user groups named in the grants, refreshed every ``ttl`` seconds.

    A failed refresh keeps nothing: a user's groups are unknown (so group grants do not
    apply) until Slack answers again. Failing closed beats authorising from stale data.
    """

    def __init__(self, client: AsyncWebClient, group_ids: set[str], ttl: float = 300) -> None:
        self._client = client
        self._group_ids = sorted(group_ids)
        self._ttl = ttl
        self._members: dict[str, set[str]] = {}
        self._fetched = 0.0

    async def groups_of(self, user_id: str) -> frozenset[str]:
        if self._group_ids and time.monotonic() - self._fetched > self._ttl:
            await self._refresh()
        return frozenset(g for g, users in self._members.items() if user_id in users)

    async def _refresh(self) -> None:
        members: dict[str, set[str]] = {}
        try:
            for group in self._group_ids:
                response = await self._client.usergroups_users_list(usergroup=group)
                members[group] = set(response.get("users") or [])
        except SlackApiError as exc:
            log.warning("usergroups.users.list failed: %s", api_error(exc))
            self._members, self._fetched = {}, 0.0
            return
        self._members, self._fetched = members, time.monotonic()
