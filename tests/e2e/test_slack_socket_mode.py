"""Socket Mode: `mailqbot serve` with SLACK_APP_TOKEN takes a slash command envelope over the
fake Slack's websocket, acks it within Slack's 3 seconds, and posts the summary of the lab."""

from __future__ import annotations

import asyncio
import sys

import pytest

from helpers.fakes import FakeSlack, slash_command_payload
from helpers.labbot import MAILQBOT, bot_env, final, free_port, wait_healthy

pytestmark = pytest.mark.lab


async def test_socket_mode_summary(fake_slack: FakeSlack, db_url: str, lab: object) -> None:
    port = free_port()
    env = bot_env(fake_slack, db_url, SLACK_APP_TOKEN="xapp-lab")
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT), "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        await fake_slack.wait_for("apps.connections.open", timeout=20)
        payload = slash_command_payload(
            "summary lab", response_url=fake_slack.response_url("socket")
        )
        envelope = await fake_slack.socket_send("slash_commands", payload, timeout=10)
        await fake_slack.socket_ack(envelope, timeout=3)
        update = (await fake_slack.wait_for("chat.update", timeout=90, predicate=final))[-1]
        assert update.args["blocks"][0]["text"]["text"] == "Queue on lab"
        (opened,) = fake_slack.calls_to("apps.connections.open")
        assert opened.token == "xapp-lab"
    finally:
        process.terminate()
        _, stderr = await process.communicate()
        if b"Traceback" in stderr:
            sys.stderr.write(stderr.decode(errors="replace"))
    assert b"Traceback" not in stderr
