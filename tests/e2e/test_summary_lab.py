"""`/mailq summary lab` against the real lab: qshape's numbers, lifetimes and disk use.

The oracle is Postfix's own `qshape` (Debian ships it as /usr/sbin/qshape) run locally as
root on the lab host (this machine) around the bot's read. The lab is shared: other users
may fill or clear the queue meanwhile, so a comparison counts only when qshape printed the
same table just before and just after the bot read the queue (ages only move forward, so
equal tables at both ends mean no message changed column in between).

These tests only read the queue. They do not use the `lab` fixture, which refills a queue
it finds too large, so they can run beside someone else's 100k-message benchmark.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import LAB_CONFIG, LAB_DIR

from bot.inventory import Host, Inventory, load_config
from bot.mta.qshape import parse_qshape, shape_table
from bot.pipeline import Request, handle
from bot.queue import HostReading, read_host
from bot.runtime import open_services
from bot.settings import Settings
from bot.ssh import SSHExecutor

pytestmark = pytest.mark.lab
QSHAPE = "/usr/sbin/qshape"
ATTEMPTS = 4


@pytest.fixture(scope="module")
def lab_up() -> None:
    if not (LAB_DIR / "lab.json").exists():
        pytest.fail("the lab is not up: run `bash tests/lab/lab.sh up` as root")


def lab_host() -> Host:
    host = Inventory(load_config(LAB_CONFIG)).get("lab")
    return host.model_copy(update={"command_timeout": 300.0})


async def qshape(*args: str) -> dict[str, tuple[int, ...]]:
    process = await asyncio.create_subprocess_exec(
        QSHAPE, *args, "deferred", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, err.decode()
    return parse_qshape(out.decode())


async def noop(_text: str) -> None:
    return None


async def stable_reading(
    executor: SSHExecutor,
) -> tuple[HostReading, dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The bot's reading, bracketed by equal `qshape` and `qshape -s` tables."""
    host = lab_host()
    for _ in range(ATTEMPTS):
        before = await asyncio.gather(qshape(), qshape("-s"))
        reading = await read_host(executor, host, time.time(), noop, [], disk=True)
        after = await asyncio.gather(qshape(), qshape("-s"))
        if before == after:
            return reading, before[0], before[1]
        await asyncio.sleep(2)
    pytest.skip(f"the lab queue did not hold still in {ATTEMPTS} tries (someone is using it)")


@pytest.fixture
async def executor(lab_up: None) -> AsyncIterator[SSHExecutor]:
    async with SSHExecutor() as ex:
        yield ex


async def test_qshape_tables_equal_qshape(executor: SSHExecutor) -> None:
    reading, recipients, senders = await stable_reading(executor)
    summary = reading.summary
    assert recipients["TOTAL"][0] > 0, "the lab should have deferred mail"
    assert shape_table(summary.deferred_shape) == recipients
    assert shape_table(summary.deferred_sender_shape) == senders
    assert not summary.deferred_shape.capped


async def test_lifetimes_and_disk_use_come_from_the_host(executor: SSHExecutor) -> None:
    reading = await read_host(executor, lab_host(), time.time(), noop, [], disk=True)
    postconf = subprocess.run(
        ["/usr/sbin/postconf", "-h", "maximal_queue_lifetime", "bounce_queue_lifetime"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    days = {value: int(value.rstrip("d")) * 86400 for value in postconf if value.endswith("d")}
    assert reading.settings.maximal_queue_lifetime == days.get(postconf[0])
    assert reading.settings.bounce_queue_lifetime == days.get(postconf[1])
    assert reading.settings.queue_directory == "/var/spool/postfix"
    assert reading.disk is not None
    assert reading.disk.problem == "", "tests/lab/sudoers.mailqbot allows du on the spool"
    du = subprocess.run(
        ["du", "-sk", "/var/spool/postfix/deferred"], check=True, capture_output=True, text=True
    )
    local = int(du.stdout.split()[0]) * 1024
    assert reading.disk.bytes is not None
    assert abs(reading.disk.bytes - local) <= max(local // 10, 1 << 20)


async def test_summary_command_end_to_end(db_url: str, lab_up: None) -> None:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=LAB_CONFIG)
    async with open_services(settings) as services:
        outcome = await handle(Request("console", "console:test", "summary lab"), services)
    assert outcome.ok, outcome.reply.text
    text = outcome.reply.text
    assert "Deferred spool on disk:" in text
    assert "(as qshape deferred)" in text
    assert re.search(r"Oldest deferred message (reaches|is past) (maximal|bounce)_queue_lif", text)
    blocks: list[dict[str, Any]] = outcome.reply.blocks
    assert len(blocks) <= 50
    assert "qshape deferred" in json.dumps(blocks)


async def test_summary_of_the_lab_group(db_url: str, lab_up: None) -> None:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=LAB_CONFIG)
    async with open_services(settings) as services:
        outcome = await handle(Request("console", "console:test", "summary labs"), services)
    assert outcome.ok, outcome.reply.text
    assert "Queues on 1 host (labs)" in outcome.reply.text
    assert "lab " in outcome.reply.text.split("status", 1)[1]
