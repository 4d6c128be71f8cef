"""``/mailq log`` on the real lab: real Postfix log, real sshd, real sudo rules.

The oracle is the same log file read here directly (the lab host is this machine): the byte
range the bot says it read, recounted with a plain independent parser, must give the same
numbers of deferred and sent lines in the window, and no line of the window may lie before
the range (the window search skipped nothing it should have read).

A file that mixes Postfix 3.7 and 3.11 lines, named by the host group's ``[log]`` table, is
read the same way: both versions' lines are counted and the unreadable ones reported.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

import commands.log as log_command
from bot import render
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Context, Identity, Request
from bot.db.models import AuditEvent
from bot.inventory import Inventory, load_config, parse_config
from bot.postfix import logreader
from bot.settings import Settings
from helpers.labbot import LAB_CONFIG
from helpers.labqueue import LAB_DIR

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_up")]

POSTFIX_LOG = Path("/var/log/postfix.log")
# Reading the log is the subject here, not the database: one database kind is enough.
sqlite_only = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def lab_up() -> None:
    """The lab must be up; unlike the ``lab`` fixture, any queue size will do (only the log
    is read)."""
    if not (LAB_DIR / "lab.json").exists() or not POSTFIX_LOG.exists():
        pytest.fail("the lab is not up: run `bash tests/lab/lab.sh up` as root")


@pytest.fixture
async def services(db_url: str) -> AsyncIterator[Services]:
    inventory = Inventory(load_config(LAB_CONFIG))
    async with open_services(Settings(DATABASE_URL=db_url), inventory) as services:
        yield services


def stamp(line: bytes, year: int) -> float:
    text = f"{year} {line[:15].decode()}"
    return datetime.strptime(text, "%Y %b %d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def recount(start_byte: int, end_byte: int, since: float) -> dict[str, int]:
    """Deferred/sent lines at or after ``since`` in bytes [start_byte, end_byte) of the log."""
    with POSTFIX_LOG.open("rb") as f:
        f.seek(start_byte)
        data = f.read(end_byte - start_byte)
    year = datetime.now(UTC).year
    counts = {"deferred": 0, "sent": 0}
    for line in data.split(b"\n"):
        for status in counts:
            if f", status={status} (".encode() in line and stamp(line, year) >= since:
                counts[status] += 1
    return counts


def half_of_the_log() -> str:
    """A ``since=`` that starts the window at the line in the middle of the log's bytes
    (24h if it is young). By bytes, not by age: the lab's log grows unevenly (a benchmark
    can write most of it in its last hour)."""
    with POSTFIX_LOG.open("rb") as f:
        f.seek(POSTFIX_LOG.stat().st_size // 2)
        f.readline()  # the rest of a line cut by the seek
        middle = f.readline()
    if not middle:
        return "since=24h"
    age = datetime.now(UTC).timestamp() - stamp(middle, datetime.now(UTC).year)
    return f"since={int(age / 60)}m" if age > 240 else "since=24h"


async def read(services: Services, options: str) -> log_command.LogReport:
    request = Request(source="console", user_id="console:lab", text=f"log lab {options}")
    ctx = Context(services, request, Identity("console", "console:lab", None))
    args = log_command.parse(argparse.Namespace(target="lab", options=[options]))
    return await log_command.run(args, ctx)


@sqlite_only
async def test_window_counts_equal_a_local_recount_of_the_same_bytes(services: Services) -> None:
    options = half_of_the_log()
    report = await read(services, options)
    start = report.a.start
    expected = recount(report.read.read_from, report.read.read_to, start)
    assert report.count("deferred") == expected["deferred"]
    assert report.count("sent") == expected["sent"]
    assert report.read.malformed == 0
    assert recount(0, report.read.read_from, start) == {"deferred": 0, "sent": 0}
    if options != "since=24h" and report.read.read_to > 2 * logreader.GRANULE:
        assert report.read.read_from > 0
        assert report.read.probes > 1
    assert report.count("deferred") > 0, "the lab log has no deferrals in the window"


async def test_through_the_pipeline_on_the_lab(services: Services) -> None:
    request = Request(source="console", user_id="console:lab", text="log lab since=10m")
    outcome = await handle(request, services)
    assert outcome.ok, outcome.reply.text
    assert outcome.reply.text.startswith("Mail log on lab, last 10m")
    assert "Read /var/log/postfix.log" in outcome.reply.text
    async with services.sessions() as session:
        event = (await session.scalars(select(AuditEvent))).one()
    commands = [r["command"] for r in event.detail["remote"]]  # type: ignore[index]
    assert "timeout -k 5 60 /usr/sbin/postconf -h maillog_file" in commands
    assert any(c.startswith("timeout -k 5 60 sudo -n /usr/bin/tail -c +") for c in commands)


@sqlite_only
async def test_slack_rendering_of_the_real_log_is_valid(services: Services) -> None:
    report = await read(services, "since=10m")
    rendered = render.render("log", report)
    assert 0 < len(rendered.blocks) <= 50
    for parsed in Block.parse_all(rendered.blocks):
        assert parsed is not None
        assert parsed.to_dict()  # raises on a Block Kit limit
    assert "<!everyone>" not in str(rendered.blocks)


# A log file of a host that was upgraded from Postfix 3.7 to 3.11 inside the window, with
# three lines mailqbot cannot read (tests/data/versions/maillog-mixed-3.7-3.11.log, its header
# says what is in it). It is put where deploy/sudoers.mailqbot lets the bot read a log and
# where this lab's Postfix does not write (it logs to /var/log/postfix.log).
MIXED = Path(__file__).resolve().parents[1] / "data" / "versions" / "maillog-mixed-3.7-3.11.log"
MIXED_ON_HOST = Path("/var/log/maillog")
MIXED_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()  # the fixture's lines: 11:xx


@pytest.fixture
def mixed_log() -> Iterator[Path]:
    if MIXED_ON_HOST.exists():
        pytest.fail(f"{MIXED_ON_HOST} exists on the lab host: this test will not overwrite it")
    lines = MIXED.read_text(encoding="utf-8").splitlines(keepends=True)
    MIXED_ON_HOST.write_text("".join(line for line in lines if not line.startswith("#")))
    try:
        yield MIXED_ON_HOST
    finally:
        MIXED_ON_HOST.unlink()


@sqlite_only
async def test_a_log_mixing_3_7_and_3_11_on_the_lab(db_url: str, mixed_log: Path) -> None:
    """The group's ``[log]`` names the file; real sshd, sudo, tail, head and grep read it."""
    text = LAB_CONFIG.read_text(encoding="utf-8")
    text += f'\n[log.groups.labs]\nsource = "file"\npath = "{mixed_log}"\n'
    inventory = Inventory(parse_config(text, str(LAB_CONFIG), LAB_CONFIG.parent))
    async with open_services(Settings(DATABASE_URL=db_url), inventory) as opened:
        services = replace(opened, clock=lambda: MIXED_NOW)
        request = Request(source="console", user_id="console:lab", text="log lab since=1h")
        outcome = await handle(request, services)
        async with services.sessions() as session:
            event = (await session.scalars(select(AuditEvent))).one()
    assert outcome.ok, outcome.reply.text
    reply = outcome.reply.text
    assert f"Read {mixed_log}" in reply
    # 3 lines from the lab's Postfix 3.7 and 6 in 3.11's format (2 with tls=), all counted.
    assert (
        "status       lines\nsent             3\ndeferred         4\nbounced          1\n" in reply
    )
    assert "\nquarantined      1\n" in reply  # a status word mailqbot does not know
    assert "downgraded from a to b): dane? 1 · may 1" in reply
    assert "3 status lines could not be read" in reply
    assert "  <22>1 2026-11-28T11:12:07.000Z mail postfix/smtp 31007" in reply
    commands = [r["command"] for r in event.detail["remote"]]  # type: ignore[index]
    assert "timeout -k 5 60 /usr/sbin/postconf -h maillog_file" not in commands
    assert any(
        c.startswith("timeout -k 5 60 sudo -n /usr/bin/tail -c +") and str(mixed_log) in c
        for c in commands
    ), commands
