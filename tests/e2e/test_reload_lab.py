"""SIGHUP on the lab: a real `mailqbot serve` process gets a new host without a restart while
a summary of the real lab host is in flight, and that summary completes.

The bot reaches the host ``lab`` through a relay on loopback that the test can hold (the
host's answers wait, the connection stays open), so the summary is still reading the queue
when the signal arrives. The added host is ``lab-wrapper``, the lab's forced-command login.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import CommandRun
from helpers.fakes import Call, Cuttable, FakeSlack, sign, slash_command_body
from helpers.labbot import MAILQBOT, SIGNING_SECRET, bot_env, final, free_port, wait_healthy
from helpers.labqueue import LAB_DIR, postqueue_json

pytestmark = pytest.mark.lab

HEAD = """
[ssh]
user = "mailqbot"
port = 2222
private_key = "{key}"
known_hosts = "{known_hosts}"
connect_timeout = "5s"
login_timeout = "5s"
command_timeout = "60s"

[access]
team_ids = ["T0LAB"]

[[access.grants]]
role = "viewer"
members = ["U0VIEWER"]

[monitor]
enabled = false

[[hosts]]
name = "lab"
address = "127.0.0.1"
port = {relay_port}
"""
ADDED = """
[[hosts]]
name = "lab-wrapper"
address = "127.0.0.1"
user = "mailqbot-fc"
sudo = false
"""


class Log:
    """The bot's JSON log lines, read from its stderr as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[dict[str, object]] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))
            self.changed.set()

    async def wait_for(self, logger: str, starts: str, timeout: float = 20) -> dict[str, object]:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if line["logger"] == logger and str(line["message"]).startswith(starts):
                        return line
                self.changed.clear()
                await self.changed.wait()


async def ask(url: str, text: str, slack: FakeSlack, name: str) -> None:
    body = slash_command_body(text, response_url=slack.response_url(name))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body)) as answer,
    ):
        assert answer.status == 200


async def answer_to(slack: FakeSlack, count: int, timeout: float = 90) -> Call:
    """The ``count``-th result posted (a final chat.update with blocks)."""
    return (await slack.wait_for("chat.update", count, timeout, predicate=final))[count - 1]


@pytest.fixture
async def relay(lab: dict[str, object]) -> AsyncIterator[Cuttable]:
    async with Cuttable(("127.0.0.1", 2222)) as held:
        yield held


async def test_sighup_adds_a_host_while_a_summary_runs_and_it_completes(
    tmp_path: Path,
    db_url: str,
    fake_slack: FakeSlack,
    relay: Cuttable,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    key_type, key = (LAB_DIR / "known_hosts").read_text().split()[1:3]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{relay.port} {key_type} {key}\n[127.0.0.1]:2222 {key_type} {key}\n"
    )
    config = tmp_path / "mailqbot.toml"
    head = HEAD.format(key=LAB_DIR / "id_ed25519", known_hosts=known_hosts, relay_port=relay.port)
    config.write_text(head)
    env = bot_env(fake_slack, db_url, MAILQBOT_LOG_FORMAT="json")
    env |= {"MAILQBOT_CONFIG": str(config), "MAILQBOT_STATE_DIR": str(tmp_path / "state")}
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT), "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    log = Log(process.stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        assert (tmp_path / "state" / "mailqbot.pid").read_text() == f"{process.pid}\n"

        await ask(url, "summary lab-wrapper", fake_slack, "before")  # not in the inventory yet
        (refused,) = await fake_slack.wait_for("response_url:before", timeout=20)
        assert "Unknown host `lab-wrapper`" in refused.args["text"]
        await ask(url, "summary lab", fake_slack, "warm")  # the SSH connection is open now
        await answer_to(fake_slack, 1)

        relay.hold()
        await ask(url, "summary lab", fake_slack, "held")
        await asyncio.wait_for(relay.asked_while_held.wait(), 20)  # it asked the host; waits

        config.write_text(head + ADDED)
        process.send_signal(signal.SIGHUP)
        reloaded = await log.wait_for("bot.app.reload", "reloaded ")
        assert "2 host(s); added lab-wrapper; removed none" in str(reloaded["message"])
        answered = [c for c in fake_slack.calls_to("chat.update") if final(c)]
        assert len(answered) == 1, "the held summary has not answered yet"

        relay.release()
        held = await answer_to(fake_slack, 2)
        assert held.args["text"].startswith("Queue on lab at ")
        assert f": {len(postqueue_json())} messages, " in held.args["text"]

        await ask(url, "summary lab-wrapper", fake_slack, "after")  # the new host, no restart
        added = await answer_to(fake_slack, 3)
        assert added.args["text"].startswith("Queue on lab-wrapper at ")
        assert process.returncode is None
    finally:
        relay.release()
        if process.returncode is None:
            process.terminate()
        await process.wait()
        await log.task

    async with sessions() as session:
        runs = (await session.scalars(select(CommandRun).order_by(CommandRun.started_at))).all()
    assert [(r.target, r.outcome) for r in runs] == [
        ("lab-wrapper", "refused"),
        ("lab", "ok"),
        ("lab", "ok"),
        ("lab-wrapper", "ok"),
    ]
    assert not [line for line in log.lines if line["level"] in {"error", "critical"}]
