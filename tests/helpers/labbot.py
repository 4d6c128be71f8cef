"""A real ``mailqbot serve`` process against the lab and the fake Slack: its environment, its
health check, signed requests to it and clicks on the buttons of its messages."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from helpers.fakes import Call, FakeSlack, block_actions_body, sign

# The repository's copy (lab.sh installs the same file in LAB_DIR): it is written in this
# checkout's config grammar, whichever copy the shared lab last installed.
LAB_CONFIG = Path(__file__).resolve().parents[1] / "lab" / "mailqbot.toml"
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


async def post_signed(bot: BotProcess, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{bot.url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body)) as r,
    ):
        await r.read()
        return r.status


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for block in blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            found[element["value"].split()[0]] = element
    return found


async def click(bot: BotProcess, slack: FakeSlack, user: str, button: dict[str, Any],
                channel: str, ts: str, name: str) -> None:  # fmt: skip
    body = block_actions_body(
        button["action_id"], button["value"], user_id=user, channel_id=channel,
        message_ts=ts, response_url=slack.response_url(name),
    )  # fmt: skip
    assert await post_signed(bot, body) == 200
