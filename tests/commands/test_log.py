"""``/mailq log`` through the real executor, pipeline and database, on a scripted SSH host.

The host emulates exactly the tools the command runs (``postconf``, ``stat``, ``date``,
``tail -c +N``, ``head -c``, ``grep -F``, ``journalctl``) over a generated log, so the window
search, the host-side filter and the journal path are checked byte for byte against a
recount of the same log here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

import commands.log as log_command
from bot import render
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.db.models import AuditEvent
from bot.demo.ssh import ScriptedSSHServer, generate_client_key
from bot.errors import ParseError, SudoPasswordRequired, UsageError
from bot.inventory import Inventory, parse_config
from bot.postfix import logreader, reasons
from bot.settings import Settings
from helpers.blockkit import all_text, assert_valid_block_kit
from helpers.loghost import NOW, FakeHost, make_log, read, syslog_stamp


def iso_stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000+0000")


def recount(data: bytes, start: float, status: str) -> int:
    """Lines of ``status`` stamped at or after ``start`` (an independent, plain reading)."""
    n = 0
    for line in data.decode().splitlines():
        stamp = datetime.strptime(f"2026 {line[:15]}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
        n += stamp.timestamp() >= start and f", status={status} (" in line
    return n


@asynccontextmanager
async def serve(fake: FakeHost, tmp_path: Path, db_url: str) -> AsyncIterator[Services]:
    key = generate_client_key(tmp_path)
    async with ScriptedSSHServer(fake, key.public_key) as server:
        known = server.write_known_hosts(tmp_path / "known_hosts")
        config = (
            f'[ssh]\nuser = "mailqbot"\nprivate_key = "{key.private_key}"\n'
            f'known_hosts = "{known}"\nsudo = true\nconnect_timeout = "5s"\n\n'
            f'[[hosts]]\nname = "mx1"\naddress = "{server.address}"\nport = {server.port}\n'
        )
        inventory = Inventory(parse_config(config, "<test>"))
        async with open_services(Settings(DATABASE_URL=db_url), inventory) as services:
            yield replace(services, clock=lambda: NOW)


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "seconds"),
    [([], 86400), (["since=30m"], 1800), (["since=6h"], 21600), (["since=7d"], 604800)],
)
def test_since(words: list[str], seconds: int) -> None:
    assert log_command.parse_since(words) == seconds


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["since=32d"], "between 1m and 31d"),
        (["since=0m"], "is not a duration; write one like 90s"),
        (["since=24"], "not a duration"),
        (["since=1y"], "not a duration"),
        (["until=1h"], "unknown option"),
        (["6h"], "unknown option"),
    ],
)
def test_bad_since_says_what_to_write(words: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        log_command.parse_since(words)


# -- reading a file ---------------------------------------------------------------------------


async def test_reads_only_the_window_and_counts_match_a_recount(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logreader, "GRANULE", 4096)
    fake = FakeHost(log=make_log(days=3))
    async with serve(fake, tmp_path, db_url) as services:
        report, ctx = await read(services, "log mx1 since=6h")
    start = NOW - 6 * 3600
    assert report.read.read_to == len(fake.log)
    assert len(fake.log) * 0.9 < report.read.read_from  # only the last 6 of 72 hours, and a bit
    assert recount(fake.log[: report.read.read_from], start, "deferred") == 0  # none skipped
    assert report.count("deferred") == recount(fake.log, start, "deferred") == 72
    assert report.count("sent") == recount(fake.log, start, "sent")
    assert not report.rotated
    tails = [argv for argv in fake.seen if argv[0] == "/usr/bin/tail"]
    assert tails[-1][2] == f"+{report.read.read_from + 1}"
    assert len(tails) == report.read.probes + 1 <= 12
    assert [r["command"] for r in ctx.remote_records()][-2].endswith(
        f"| /usr/bin/head -c {len(fake.log) - report.read.read_from} | /bin/grep -a -F ' status='"
    )
    assert report.read.received < len(fake.log) / 10  # only delivery lines cross the network


async def test_queue_id_deferred_hourly_is_listed_with_its_attempts(
    tmp_path: Path, db_url: str
) -> None:
    async with serve(FakeHost(log=make_log(days=1)), tmp_path, db_url) as services:
        report, _ = await read(services, "log mx1 since=6h")
    assert [(r.queue_id, r.attempts, r.status) for r in report.a.repeated] == [
        ("ABCDEF999", 6, "deferred")
    ]
    rendered = render.render("log", report)
    assert rendered.attachment is not None
    assert "ABCDEF999" in rendered.attachment.content
    assert rendered.attachment.filename == "mailq-log-mx1-6h.txt"
    assert_valid_block_kit(rendered.blocks)


async def test_a_log_younger_than_the_window_is_read_whole_and_says_so(
    tmp_path: Path, db_url: str
) -> None:
    fake = FakeHost(log=make_log(days=1))
    async with serve(fake, tmp_path, db_url) as services:
        report, _ = await read(services, "log mx1 since=7d")
    assert (report.read.read_from, report.read.probes) == (0, 1)
    assert report.rotated
    assert report.count("deferred") == recount(fake.log, 0, "deferred")
    assert "rotated files, which were not read" in render.render("log", report).text


async def test_journal_when_syslog_files_are_missing(tmp_path: Path, db_url: str) -> None:
    fake = FakeHost(maillog_file="", journal=make_log(days=0.5, stamp=iso_stamp))
    async with serve(fake, tmp_path, db_url) as services:
        report, _ = await read(services, "log mx1 since=6h")
    stat = next(argv for argv in fake.seen if argv[0] == "/usr/bin/stat")
    assert stat[4:] == ["/var/log/mail.log", "/var/log/maillog"]
    journal = fake.seen[-1]
    assert journal[:4] == [
        "/bin/journalctl", "SYSLOG_FACILITY=2", f"--since=@{int(NOW) - 21600}",
        f"--until=@{int(NOW) + 1}",
    ]  # fmt: skip
    assert report.source.label == "the journal (mail facility)"
    assert report.count("deferred") == 72


async def test_sudo_refusal_says_how_to_fix_it(tmp_path: Path, db_url: str) -> None:
    async with serve(FakeHost(log=make_log(days=1), sudo_ok=False), tmp_path, db_url) as services:
        with pytest.raises(SudoPasswordRequired, match="sudoers"):
            await read(services, "log mx1")


class FloodingHost(FakeHost):
    """Ignores ``head -c``: every read sends the rest of the log."""

    @staticmethod
    def _filter(stage: list[str], data: bytes) -> tuple[int, bytes]:
        return FakeHost._filter(stage, data) if stage[0] != "/usr/bin/head" else (0, data)


async def test_a_probe_that_prints_more_than_asked_is_refused(tmp_path: Path, db_url: str) -> None:
    fake = FloodingHost(log=make_log(days=7))  # 1.3 MiB: a probe asks for 16 KiB
    async with serve(fake, tmp_path, db_url) as services:
        with pytest.raises(ParseError, match="printed more than the 16,384 bytes it asks for"):
            await read(services, "log mx1 since=6h")


def hostile_log(count: int) -> bytes:
    """``count`` deferrals in the last hour, each reason with a 2 KB word of its own."""
    pieces = ["a.", "1.", "a[", "a.b[", "-.", "a@", "1.1.1.1.", "<a@"]
    lines = []
    for i in range(count):
        tag = "".join(chr(ord("a") + int(d)) for d in f"{i:06d}")
        word = (tag + pieces[i % len(pieces)] * 2048)[:2048]
        lines.append(
            f"{syslog_stamp(NOW - 3600 + i)} mail postfix/smtp[{i}]: {0xB00000 + i:X}: "
            f"to=<u{i}@d.test>, relay=mx.d.test[192.0.2.4]:25, delay=5, delays=0/0/5/0, "
            f"dsn=4.7.1, status=deferred (host mx.d.test[192.0.2.4] said: 450 4.7.1 {word} "
            "(in reply to RCPT TO command))"
        )
    return ("\n".join(lines) + "\n").encode()


async def test_a_hostile_log_never_holds_the_event_loop(tmp_path: Path, db_url: str) -> None:
    """1,500 deferrals whose reasons hold 2 KB words of their own: the former reason
    patterns spent about 20 ms on each, some seconds per 256 KiB read."""
    for cached in vars(reasons).values():
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    async with serve(FakeHost(log=hostile_log(1500)), tmp_path, db_url) as services:
        work = asyncio.ensure_future(read(services, "log mx1 since=6h"))
        longest, last = 0.0, time.thread_time()
        while not work.done():
            await asyncio.sleep(0.001)
            now = time.thread_time()
            longest, last = max(longest, now - last), now
        report, _ctx = await work
    assert dict(report.a.statuses)["deferred"] == 1500
    assert longest < 0.1, f"the loop was held for {longest * 1000:.0f} ms"


async def test_hostile_text_from_the_log_pings_nobody(tmp_path: Path, db_url: str) -> None:
    async with serve(FakeHost(log=make_log(days=1, hostile=True)), tmp_path, db_url) as services:
        report, _ = await read(services, "log mx1")
    rendered = render.render("log", report)
    text = all_text(rendered.blocks)
    assert "<!here>" not in text
    assert "&lt;!here&gt;.evil.test" in text
    for block in rendered.blocks:
        for part in [block.get("text"), *block.get("fields", [])]:
            if isinstance(part, dict):
                assert part["text"].count("<") == part["text"].count("<!date^")
    assert_valid_block_kit(rendered.blocks)


async def test_through_the_pipeline_with_audit(tmp_path: Path, db_url: str) -> None:
    async with serve(FakeHost(log=make_log(days=2)), tmp_path, db_url) as services:
        request = Request(source="console", user_id="console:test", text="log mx1 since=24h")
        outcome = await handle(request, services)
        async with services.sessions() as session:
            events = list((await session.scalars(select(AuditEvent))).all())
    assert outcome.ok, outcome.reply.text
    assert outcome.reply.text.startswith("Mail log on mx1, last 24h")
    assert "status    lines\nsent        288\ndeferred    288\n" in outcome.reply.text
    commands = [r["command"] for r in events[0].detail["remote"]]  # type: ignore[index]
    assert any("sudo -n /usr/bin/tail -c +" in c and "| /bin/grep" in c for c in commands)
