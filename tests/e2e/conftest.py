"""The real lab (Postfix + OpenSSH + DNS on loopback) and a real `mailqbot serve` process."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from fakes import Call, FakeSlack
from labqueue import LAB_DIR as LAB_DIR  # re-exported for the lab tests

# The repository's copy (lab.sh installs the same file in LAB_DIR): it is written in this
# checkout's config grammar, whichever copy the shared lab last installed.
LAB_CONFIG = Path(__file__).resolve().parents[1] / "lab" / "mailqbot.toml"
ROOT = Path(__file__).resolve().parents[2]
MAILQBOT = Path(sys.executable).parent / "mailqbot"
SIGNING_SECRET = "lab-signing-secret"


def final(call: Call) -> bool:
    """The result replaces the placeholder with blocks; progress updates are text only."""
    return "blocks" in call.args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    url: str
    env: dict[str, str]
    process: asyncio.subprocess.Process


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


def bot_env(slack: FakeSlack, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(
        SLACK_BOT_TOKEN="xoxb-lab",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=db_url,
        MAILQBOT_CONFIG=str(LAB_CONFIG),
        MAILQBOT_METRICS_PORT="0",  # no metrics listener: processes run side by side
        HTTP_PROXY="",
        HTTPS_PROXY="",
        http_proxy="",
        https_proxy="",
        **extra,
    )
    return env


async def wait_healthy(url: str, process: asyncio.subprocess.Process, timeout: float = 20) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout / 0.1)):
            if process.returncode is not None:
                raise RuntimeError(f"mailqbot serve exited with {process.returncode}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("mailqbot serve did not become healthy")


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
