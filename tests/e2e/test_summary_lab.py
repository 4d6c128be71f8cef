"""`/mailq summary lab` against the real lab: qshape's numbers, lifetimes and disk use.

The oracle is Postfix's own `qshape` (Debian ships it as /usr/sbin/qshape) run locally as
root on the lab host (this machine), started in the same second as the bot's read (both
take their clock once, at the start, in whole seconds). The lab is shared: other users may
fill or clear the queue meanwhile, so a difference counts only if the queue's IDs were the
same before and after; otherwise the comparison is tried again.

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

from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.context import Request
from bot.inventory import Host, Inventory, load_config
from bot.postfix.qshape import parse_qshape, shape_table
from bot.postfix.reader import HostReading, read_host
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from helpers.labbot import LAB_CONFIG
from helpers.labqueue import LAB_DIR

pytestmark = pytest.mark.lab
QSHAPE = "/usr/sbin/qshape"
ATTEMPTS = 4
Table = dict[str, tuple[int, ...]]


@pytest.fixture(scope="module")
def lab_up() -> None:
    if not (LAB_DIR / "lab.json").exists():
        pytest.fail("the lab is not up: run `bash tests/lab/lab.sh up` as root")


def lab_host() -> Host:
    host = Inventory(load_config(LAB_CONFIG)).get("lab")
    return host.model_copy(update={"command_timeout": 300.0})


async def qshape(*args: str) -> Table:
    process = await asyncio.create_subprocess_exec(
        QSHAPE, *args, "deferred", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 600)
    assert process.returncode == 0, err.decode()
    return parse_qshape(out.decode())


async def noop(_text: str) -> None:
    return None


def queued_ids() -> set[str]:
    out = subprocess.run(["/usr/sbin/postqueue", "-j"], check=True, capture_output=True).stdout
    return {json.loads(line)["queue_id"] for line in out.splitlines() if line.strip()}


async def same_moment(
    executor: SSHExecutor,
) -> tuple[HostReading, Table, Table, Table, Table]:
    """The bot's reading and `qshape`/`qshape -s`, all started early in the same second."""
    host = lab_host()
    await asyncio.sleep(1.1 - time.time() % 1)
    now = time.time()
    recipients, senders, reading = await asyncio.gather(
        qshape(), qshape("-s"), read_host(Remote.reader(executor), host, now, disk=True)
    )
    ours = shape_table(reading.summary.deferred_shape)
    ours_senders = shape_table(reading.summary.deferred_sender_shape)
    return reading, ours, recipients, ours_senders, senders


@pytest.fixture
async def executor(lab_up: None) -> AsyncIterator[SSHExecutor]:
    async with SSHExecutor() as ex:
        yield ex


async def test_qshape_tables_equal_qshape(executor: SSHExecutor) -> None:
    for _ in range(ATTEMPTS):
        ids = queued_ids()
        reading, ours, theirs, ours_senders, their_senders = await same_moment(executor)
        if (ours, ours_senders) == (theirs, their_senders) or queued_ids() == ids:
            break  # equal, or unequal on a queue that held still: a real difference
    else:
        pytest.skip(f"the lab queue kept changing in {ATTEMPTS} tries (someone is using it)")
    assert theirs["TOTAL"][0] > 0, "the lab should have deferred mail"
    assert ours == theirs
    assert ours_senders == their_senders
    assert not reading.summary.deferred_shape.capped


async def test_lifetimes_and_disk_use_come_from_the_host(executor: SSHExecutor) -> None:
    reading = await read_host(Remote.reader(executor), lab_host(), time.time(), disk=True)
    postconf = subprocess.run(
        ["/usr/sbin/postconf", "-h", "maximal_queue_lifetime", "bounce_queue_lifetime"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    days = {value: int(value.rstrip("d")) * 86400 for value in postconf if value.endswith("d")}
    assert reading.settings.maximal_queue_lifetime == days.get(postconf[0])
    assert reading.settings.bounce_queue_lifetime == days.get(postconf[1])
    assert reading.settings.queue_directory == "/var/spool/postfix"
    assert reading.disk is not None
    assert reading.disk.problem == "", "deploy/sudoers.mailqbot allows du on the spool"
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
