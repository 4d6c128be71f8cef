"""The database cut while a real `mailqbot serve` runs against the real lab Postfix.

Signed Slack requests ask for hold, requeue, flush (one message and all), purge and an
approval while PostgreSQL is unreachable (a relay between the bot and it is cut). Each is
refused with a message saying nothing was changed, sudo's log on the host gains not one
line (the lab logs every command sudo runs or refuses for the bot), the test's messages stay in
the deferred queue untouched (their queue files, whose time a flush would reset, too).
Once the relay is restored the same process serves again: a hold runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from helpers.fakes import Cuttable, FakeSlack, sign, slash_command_body
from helpers.labbot import (
    MAILQBOT,
    SIGNING_SECRET,
    BotProcess,
    bot_env,
    final,
    free_port,
    wait_healthy,
)
from helpers.labmail import ids_from, inject, new_sender, remove

pytestmark = pytest.mark.lab
SUDO_LOG = Path("/var/log/mailqbot-lab-sudo.log")
SPOOL = Path("/var/spool/postfix")
NOTHING_CHANGED = ("Nothing was changed", "nothing was changed", "did nothing", "changed nothing")


@pytest.fixture
async def relay() -> AsyncIterator[Cuttable]:
    async with Cuttable(("127.0.0.1", 5432)) as opened:
        yield opened


@pytest.fixture
async def cut_bot(
    fake_slack: FakeSlack, db_url: str, lab: dict[str, object], relay: Cuttable
) -> AsyncIterator[BotProcess]:
    """`mailqbot serve` whose PostgreSQL is behind the relay."""
    if "postgresql" not in db_url:
        pytest.skip("the relay stands between the bot and PostgreSQL")
    port = free_port()
    env = bot_env(fake_slack, db_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}"))
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT), "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
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


async def slash(bot: BotProcess, slack: FakeSlack, text: str, user: str, name: str) -> None:
    body = slash_command_body(text, user_id=user, response_url=slack.response_url(name))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{bot.url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body)) as r,
    ):
        assert r.status == 200


async def private_reply(bot: BotProcess, slack: FakeSlack, text: str, user: str) -> str:
    name = f"r{os.urandom(4).hex()}"
    await slash(bot, slack, text, user, name)
    (reply,) = await slack.wait_for(f"response_url:{name}", timeout=60)
    return str(reply.args.get("text", "")) + json.dumps(reply.args.get("blocks"))


async def public_result(bot: BotProcess, slack: FakeSlack, text: str, user: str) -> str:
    before = len([c for c in slack.calls_to("chat.update") if final(c)])
    await slash(bot, slack, text, user, f"r{os.urandom(4).hex()}")
    await slack.wait_for("chat.update", count=before + 1, timeout=60, predicate=final)
    update = [c for c in slack.calls_to("chat.update") if final(c)][-1]
    return str(update.args.get("text", "")) + json.dumps(update.args.get("blocks"))


def sudo_log() -> str:
    """Everything sudo ran or refused for the bot's users on the lab host."""
    assert SUDO_LOG.exists(), f"{SUDO_LOG} is missing: is the lab up (tests/lab/lab.sh)?"
    return SUDO_LOG.read_text(errors="replace")


def postsuper_runs() -> int:
    return sudo_log().count("postsuper")


def file_times(ids: set[str]) -> dict[str, float]:
    """Each message's deferred queue file time (Postfix's next retry time)."""
    return {i: next((SPOOL / "deferred").glob(f"*/{i}")).stat().st_mtime for i in ids}


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_no_change_reaches_the_host_while_the_database_is_cut(
    cut_bot: BotProcess, fake_slack: FakeSlack, relay: Cuttable
) -> None:
    sender = new_sender()
    ids = inject(sender, 3)
    try:
        one, two, _three = sorted(ids)
        planned = await public_result(
            cut_bot, fake_slack, f"purge lab {two} why=INC-11", "U0OPERATOR"
        )
        plan = re.search(r"\*Plan\* `(p[0-9a-f]{10})`", planned)
        assert plan is not None, planned
        logged, runs, times = sudo_log(), postsuper_runs(), file_times(ids)
        relay.cut()
        for text, user in [
            (f"hold lab {one}", "U0OPERATOR"),
            (f"requeue lab {one}", "U0OPERATOR"),
            (f"flush lab {one}", "U0OPERATOR"),
            ("flush lab", "U0OPERATOR"),
            (f"purge lab {one} why=INC-12", "U0OPERATOR"),
            (f"approve {plan[1]}", "U0ADMIN"),
        ]:
            said = await private_reply(cut_bot, fake_slack, text, user)
            assert any(words in said for words in NOTHING_CHANGED), (text, said)
        assert sudo_log() == logged, "sudo ran or refused something with the database cut"
        assert ids_from(sender, "deferred") == ids  # nothing held, requeued or deleted
        assert file_times(ids) == times  # nothing flushed
        relay.restore()
        held = await public_result(cut_bot, fake_slack, f"hold lab {one}", "U0OPERATOR")
        assert "Put on hold" in held, held
        assert postsuper_runs() > runs
        assert ids_from(sender, "hold") == {one}
    finally:
        relay.restore()
        remove(ids_from(sender))
