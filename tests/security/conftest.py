"""Fixtures for the security tests: the fake Slack server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helpers.fakes import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
