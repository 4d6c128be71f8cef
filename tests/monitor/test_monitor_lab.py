"""Monitoring end to end on the real lab: `mailqbot serve` polls Postfix over SSH and alerts
through the fake Slack server.

The thresholds sit just above the lab's current deferred count D (warning D+3, critical
D+6, clear under D+2), so the test adds a handful of messages of its own (sender
``monitor-e2e@invoices.test``, to refused.test: deferred at once) and deletes exactly those
afterwards: the shared lab queue ends as it began. Steps: +3 opens exactly one root; +4
more escalates (root edited, note in the thread); Acknowledge is refused to a viewer and
recorded (with its audit event) for an operator; deleting ours resolves; after the cooldown
+3 opens a second root.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.db.models import AuditEvent, Incident, QueueSample
from bot.db.session import make_engine, make_sessionmaker
from bot.postfix.reasons import ReasonClass
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail
from helpers.fakes import FakeSlack, block_actions_body, sign
from helpers.labqueue import settled_queue

pytestmark = pytest.mark.lab
LAB_DIR = Path("/var/lib/mailqbot-lab")
LAB_TOML = Path(__file__).resolve().parents[1] / "lab" / "mailqbot.toml"  # this checkout's grammar
MAILQBOT = Path(sys.executable).parent / "mailqbot"
SECRET = "lab-signing-secret"
CHANNEL = "C0LABALERT"
SENDER = "monitor-e2e@invoices.test"


def queue() -> list[dict[str, object]]:
    out = subprocess.run(["/usr/sbin/postqueue", "-j"], check=True, capture_output=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ours() -> list[str]:
    return [str(m["queue_id"]) for m in queue() if m["sender"] == SENDER]


def inject(count: int) -> None:
    with smtplib.SMTP("127.0.0.1", 25, local_hostname="monitor.lab.test", timeout=30) as smtp:
        for n in range(count):
            body = f"Subject: monitor e2e {n}\r\n\r\nqueued by the monitor test\r\n"
            smtp.sendmail(SENDER, [f"e2e{n}@refused.test"], body.encode())


def wait_deferred(expected: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        mine = [m for m in queue() if m["sender"] == SENDER]
        if len(mine) == expected and all(m["queue_name"] == "deferred" for m in mine):
            return
        time.sleep(0.2)
    raise TimeoutError(f"our {expected} messages were not all deferred in {timeout}s")


def drain() -> None:
    ids = ours()
    if ids:
        subprocess.run(
            ["/usr/sbin/postsuper", "-d", "-"],
            input="\n".join(ids).encode(),
            check=True,
            capture_output=True,
        )


@pytest.fixture
def lab_queue() -> Iterator[int]:
    if not (LAB_DIR / "lab.json").exists():
        pytest.fail("the lab is not up: run `bash tests/lab/lab.sh up` as root")
    drain()
    try:
        yield sum(1 for m in settled_queue() if m["queue_name"] == "deferred")
    finally:
        drain()


def config(base: int) -> str:
    text = LAB_TOML.read_text(encoding="utf-8").split("[monitor]")[0]
    return text + (
        '\n[monitor]\ninterval = "1s"\njitter = 0\ntick = "200ms"\ncooldown = "4s"\n'
        '[monitor.budget]\nper_minute = 600\nburst = 20\nedit_gap = "200ms"\n'
        "[monitor.rules]\n"
        f"deferred = {{ warning = {base + 3}, critical = {base + 6}, clear = {base + 2} }}\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def serve(
    tmp_path: Path, db_url: str, lab_queue: int
) -> AsyncIterator[tuple[FakeSlack, str]]:
    path = tmp_path / "mailqbot.toml"
    path.write_text(config(lab_queue), encoding="utf-8")
    async with FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
        env |= {
            "SLACK_BOT_TOKEN": "xoxb-lab",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": db_url,
            "MAILQBOT_CONFIG": str(path),
            "MAILQBOT_REPLICA_ID": "lab-e2e",
            "MAILQBOT_METRICS_PORT": "0",
        }
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            str(MAILQBOT),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield slack, f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            _, stderr = await process.communicate()
            assert b"Traceback" not in stderr, stderr.decode(errors="replace")


def roots(slack: FakeSlack) -> list[dict[str, object]]:
    return [m for m in slack.messages_in(CHANNEL) if "thread_ts" not in m]


def notes(slack: FakeSlack, ts: str) -> list[str]:
    return [str(m["text"]) for m in slack.messages_in(CHANNEL) if m.get("thread_ts") == ts]


async def until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)


async def click(
    slack: FakeSlack, url: str, value: str, user: str, ts: str, action: str = "mailq_alert_ack"
) -> None:
    body = block_actions_body(
        action,
        value,
        user_id=user,
        channel_id=CHANNEL,
        message_ts=ts,
        response_url=slack.response_url(user),
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/slack/events", data=body, headers=sign(SECRET, body)) as response,
    ):
        assert response.status == 200


async def test_lab_incident_opens_escalates_resolves_and_reopens(
    serve: tuple[FakeSlack, str], db_url: str, lab_queue: int
) -> None:
    slack, url = serve
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine, AuditTrail.from_settings(Settings()))
    try:

        async def polls() -> int:
            async with sessions() as session:
                return len((await session.scalars(select(QueueSample.id))).all())

        async with asyncio.timeout(30):
            while await polls() < 2:
                await asyncio.sleep(0.2)
        assert roots(slack) == []

        await asyncio.to_thread(inject, 3)
        await asyncio.to_thread(wait_deferred, 3)
        await until(lambda: len(roots(slack)) == 1)
        root = roots(slack)[0]
        ts = str(root["ts"])
        assert f"WARNING lab: Deferred messages {lab_queue + 3:,}" in str(root["text"])

        # Purge… asks for a plan of the top reason class: previewed, nothing deleted yet
        buttons = next(b for b in root["blocks"] if b["type"] == "actions")["elements"]  # type: ignore[index]
        purge = next(b["value"] for b in buttons if b["text"]["text"] == "Purge…")
        incident = next(b["value"] for b in buttons if b["action_id"] == "mailq_alert_ack")
        words = purge.split(" ", 3)
        assert words[:2] == ["purge", "lab"]
        assert words[2].removeprefix("reason=") in ReasonClass.__members__
        assert words[3] == f'why="alert {incident}"'
        await click(slack, url, purge, "U0OPERATOR", ts, "mailq_run_thread")
        await until(lambda: any("waiting for approval" in n for n in notes(slack, ts)))
        plan = next(m for m in slack.messages_in(CHANNEL) if "approval" in str(m["text"]))
        assert plan["thread_ts"] == ts
        assert f"alert {incident}" in json.dumps(plan["blocks"])  # the plan's why=
        assert words[2] in json.dumps(plan["blocks"])  # its selection: reason=<class>
        assert len(ours()) == 3  # a plan only: purge waits for another person's approval

        await asyncio.to_thread(inject, 4)
        await asyncio.to_thread(wait_deferred, 7)
        await until(lambda: any("Now critical" in n for n in notes(slack, ts)))
        # the root is edited in its own time (coalesced, under the channel's shared edit rate)
        await until(lambda: str(slack.messages[(CHANNEL, ts)]["text"]).startswith("CRITICAL lab"))

        await click(slack, url, incident, "U0VIEWER", ts)
        (denied,) = await slack.wait_for("response_url:U0VIEWER", timeout=10)
        assert "may not" in denied.args["text"]
        await click(slack, url, incident, "U0OPERATOR", ts)
        await until(lambda: any("Acknowledged by U0OPERATOR" in n for n in notes(slack, ts)))
        note = next(m for m in slack.messages_in(CHANNEL) if "Acknowledged" in str(m["text"]))
        assert "Acknowledged by <@U0OPERATOR>" in json.dumps(note["blocks"])  # a mention
        await until(lambda: "<@U0OPERATOR>" in json.dumps(slack.messages[(CHANNEL, ts)]["blocks"]))

        await asyncio.to_thread(drain)
        await until(lambda: any("Resolved" in n for n in notes(slack, ts)))
        await until(lambda: str(slack.messages[(CHANNEL, ts)]["text"]).startswith("RESOLVED lab"))
        assert len(roots(slack)) == 1

        await asyncio.sleep(4.5)  # past the cooldown
        await asyncio.to_thread(inject, 3)
        await asyncio.to_thread(wait_deferred, 3)
        await until(lambda: len(roots(slack)) == 2)
        await asyncio.to_thread(drain)

        async with sessions() as session:
            incidents = (await session.scalars(select(Incident).order_by(Incident.id))).all()
            acks = (
                await session.scalars(
                    select(AuditEvent).where(AuditEvent.action == "incident.acknowledged")
                )
            ).all()
        assert [i.peak for i in incidents] == [lab_queue + 7, lab_queue + 3]
        assert incidents[0].acknowledged_by == "U0OPERATOR"
        assert [(a.actor, a.host) for a in acks] == [("U0OPERATOR", "lab")]
    finally:
        await engine.dispose()
