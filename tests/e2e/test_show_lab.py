"""``/mailq show`` against the real lab: Postfix over real SSH with the real sudoers rules.

The oracle is Postfix itself, run locally (the lab host is this machine): ``postqueue -j``
for the envelope sender and each recipient's delay reason, ``postcat`` for headers and
body. The lab queue is shared and may change under a test (other people flush it), so a
message that leaves the queue meanwhile is replaced by another one, a few times at most.
These tests need only one deferred message, so they never refill the queue (the shared
``lab`` fixture clears and refills it when it holds fewer than 100 deferred messages, which
would destroy whatever someone else has queued): with no deferred mail they skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import commands
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Context, Identity, Request
from bot.db.models import AuditEvent
from bot.errors import NotInQueue
from bot.postfix.postcat import unquote_address
from bot.settings import Settings
from commands.show import ShowModel
from helpers.labbot import LAB_CONFIG
from helpers.labqueue import LAB_DIR

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_is_up")]
MAILQBOT = Path(sys.executable).parent / "mailqbot"
TRIES = 5

Record = dict[str, Any]


def deferred(test: Callable[[Record], bool] = lambda _r: True, count: int = TRIES) -> list[Record]:
    """Up to ``count`` deferred messages of a local ``postqueue -j`` that pass ``test``."""
    found: list[Record] = []
    with subprocess.Popen(["/usr/sbin/postqueue", "-j"], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            record = json.loads(line)
            if record["queue_name"] == "deferred" and test(record):
                found.append(record)
                if len(found) == count:
                    proc.kill()
                    break
    if not found:
        pytest.skip("no deferred message of the kind needed is in the lab queue right now")
    return found


def local_postcat(flags: str, queue_id: str) -> str | None:
    if os.geteuid() != 0:
        pytest.skip("comparing with local postcat needs root")
    out = subprocess.run(
        ["/usr/sbin/postcat", flags, "-q", queue_id], capture_output=True, text=True, check=False
    )
    return out.stdout if out.returncode == 0 else None


@pytest.fixture(scope="module")
def lab_is_up() -> None:
    if not (LAB_DIR / "lab.json").exists():
        pytest.fail("the lab is not up: run `bash tests/lab/lab.sh up` as root")


@pytest.fixture
async def services(db_url: str) -> AsyncIterator[Services]:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=LAB_CONFIG)
    async with open_services(settings) as services:
        yield services


def context(services: Services, text: str) -> Context:
    request = Request(source="console", user_id="console:lab-test", text=text)
    return Context(services, request, Identity("console", request.user_id, None))


async def show(services: Services, records: list[Record], body: bool = False) -> ShowModel:
    """Run the command for the first of ``records`` still queued when it runs."""
    for record in records:
        text = f"show lab {record['queue_id']}" + (" body" if body else "")
        spec, args = commands.parse(text)
        try:
            model: ShowModel = await spec.run(args, context(services, text))
        except NotInQueue:
            continue
        return model
    pytest.skip("every candidate message left the lab queue before it could be shown")


async def test_envelope_and_reasons_match_postqueue(services: Services) -> None:
    records = deferred(lambda r: len(r["recipients"]) > 1)
    model = await show(services, records)
    record = next(r for r in records if r["queue_id"] == model.queue_id)
    assert model.listing.sender == record["sender"]
    assert [(r.address, r.reason) for r in model.recipients if r.status == "waiting"] == [
        (r["address"], r.get("delay_reason", "")) for r in record["recipients"]
    ]
    assert model.postcat.queue_id == model.queue_id
    envelope_sender = "MAILER-DAEMON" if model.postcat.sender == "" else model.postcat.sender
    assert envelope_sender == unquote_address(record["sender"])
    waiting = sorted(r.address for r in model.postcat.recipients if r.status == "waiting")
    assert waiting == sorted(unquote_address(r["address"]) for r in record["recipients"])
    assert model.postcat.content_size == record["message_size"]
    assert model.body is None


async def test_headers_and_body_match_local_postcat(services: Services) -> None:
    model = await show(services, deferred(), body=True)
    headers = local_postcat("-h", model.queue_id)
    body = local_postcat("-b", model.queue_id)
    if headers is None or body is None:
        pytest.skip("the message left the queue during the test")
    assert model.header_lines() == headers.splitlines()
    assert model.body is not None
    expected = body.splitlines()[1:]  # postcat -b starts with the empty separator line
    assert list(model.body.lines) == expected[: len(model.body.lines)]
    assert model.body.complete == (len(model.body.lines) == len(expected))


async def test_delivered_recipients_are_shown_as_such(services: Services) -> None:
    records = deferred(lambda r: len(r["recipients"]) > 1, count=200)
    for record in records:
        envelope = local_postcat("-e", record["queue_id"]) or ""
        if "done_recipient: " in envelope:
            break
    else:
        pytest.skip("no message with an already delivered recipient in the lab queue")
    model = await show(services, [record])
    done = [r.address for r in model.recipients if r.status == "delivered"]
    assert done == [
        line.split(": ", 1)[1] for line in envelope.splitlines() if line.startswith("done_")
    ]


async def test_unknown_id_is_a_clear_error_after_reading_the_whole_queue(
    services: Services,
) -> None:
    outcome = await handle(Request("console", "console:lab-test", "show lab 0123456789A"), services)
    assert not outcome.ok
    assert outcome.reply.text == (
        "No message 0123456789A in the queue on lab: it may have been delivered or deleted. "
        "`/mailq list lab` shows what is queued."
    )


async def test_audit_records_each_remote_command_with_sudo_where_needed(
    services: Services,
) -> None:
    for record in deferred():
        outcome = await handle(
            Request("console", "console:lab-test", f"show lab {record['queue_id']}"), services
        )
        if outcome.ok:
            break
    else:
        pytest.skip("every candidate message left the lab queue before it could be shown")
    async with services.sessions() as session:
        event = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()[-1]
    remote: list[dict[str, Any]] = event.detail["remote"]  # type: ignore[index]
    commands_run = [r["command"] for r in remote]
    qid = record["queue_id"]
    assert commands_run[1].endswith("/usr/sbin/postqueue -j")
    assert commands_run[2].endswith(f"sudo -n /usr/sbin/postcat -eh -q {qid}")
    assert all(r["host_key"] for r in remote if r["exit"] is not None)


def test_console_process_shows_a_lab_message(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "MAILQBOT_CONFIG": str(LAB_CONFIG)}
    for record in deferred():
        qid = record["queue_id"]
        result = subprocess.run(
            [str(MAILQBOT), "console", f"show lab {qid}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        if "No message" in result.stdout:
            continue
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"Message {qid} on lab: deferred")
        assert "Headers (" in result.stdout
        assert "Body withheld" in result.stdout
        assert "Traceback" not in result.stderr
        return
    pytest.skip("every candidate message left the lab queue before it could be shown")
