"""Fixtures for the lab tests: the fake Slack and a real `mailqbot serve` process against the
real lab (Postfix + OpenSSH + DNS on loopback); ``helpers.labbot`` has the rest."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from helpers.fakes import FakeSlack
from helpers.labbot import MAILQBOT, BotProcess, bot_env, free_port, wait_healthy


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest.fixture
async def bot(
    fake_slack: FakeSlack, db_url: str, lab: dict[str, object]
) -> AsyncIterator[BotProcess]:
    """`mailqbot serve` in HTTP mode, as its own process, talking to the fake Slack."""
    port = free_port()
    env = bot_env(fake_slack, db_url)
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT),
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield BotProcess(url, env, process)
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await process.communicate()
        if b"Traceback" in stderr:
            sys.stderr.write(stderr.decode(errors="replace"))
