"""``/mailq log`` through the real executor, pipeline and database, on a scripted SSH host.

The host emulates exactly the tools the command runs (``postconf``, ``stat``, ``date``,
``tail -c +N``, ``head -c``, ``grep -F``, ``journalctl``) over a generated log, so the window
search, the host-side filter and the journal path are checked byte for byte against a
recount of the same log here.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from test_render import all_text, assert_valid_block_kit

import commands.log as log_command
from bot import render
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Context, Identity, Request
from bot.db.models import AuditEvent
from bot.demo.ssh import Reply, ScriptedSSHServer, generate_client_key
from bot.errors import ParseError, SudoPasswordRequired, UsageError
from bot.inventory import Inventory, parse_config
from bot.postfix import logreader, reasons
from bot.settings import Settings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
LOG = "/var/log/postfix.log"
DEFERRED = (
    "{stamp} mail postfix/smtp[{pid}]: {qid}: to=<{rcpt}>, relay={relay}, delay=5.1, "
    "delays=0.01/0.02/5/0, dsn=4.4.1, status=deferred (connect to mx.slow.test[192.0.2.4]:25: "
    "Connection timed out)"
)
SENT = (
    "{stamp} mail postfix/smtp[{pid}]: {qid}: to=<{rcpt}>, relay=mx.ok.test[192.0.2.5]:25, "
    "delay=0.5, delays=0.1/0.1/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
)
NOISE = "{stamp} mail postfix/smtpd[{pid}]: connect from localhost[127.0.0.1]"


def syslog_stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%b %e %H:%M:%S")


def iso_stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000+0000")


def make_log(days: float, stamp=syslog_stamp, hostile: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    """A line of each kind every 5 minutes for ``days`` up to NOW; one ID deferred hourly."""
    lines = []
    t, i = NOW - days * 86400, 0
    while t < NOW:
        rcpt = '"<!channel>"@evil.test' if hostile else f"user{i}@slow.test"
        relay = "<!here>.evil.test[192.0.2.9]:25" if hostile else "mx.slow.test[192.0.2.4]:25"
        qid = "ABCDEF999" if i % 12 == 0 else f"{0xB00000 + i:X}"
        lines.append(DEFERRED.format(stamp=stamp(t), pid=i, qid=qid, rcpt=rcpt, relay=relay))
        lines.append(SENT.format(stamp=stamp(t + 1), pid=i, qid=f"{0xC00000 + i:X}", rcpt="a@b"))
        lines.append(NOISE.format(stamp=stamp(t + 2), pid=i))
        t, i = t + 300, i + 1
    return ("\n".join(lines) + "\n").encode()


def recount(data: bytes, start: float, status: str) -> int:
    """Lines of ``status`` stamped at or after ``start`` (an independent, plain reading)."""
    n = 0
    for line in data.decode().splitlines():
        stamp = datetime.strptime(f"2026 {line[:15]}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
        n += stamp.timestamp() >= start and f", status={status} (" in line
    return n


@dataclass
class FakeHost:
    """Answers the log-reading commands the way the real tools would."""

    log: bytes = b""
    maillog_file: str = LOG
    journal: bytes = b""
    sudo_ok: bool = True
    seen: list[list[str]] = field(default_factory=list)

    async def __call__(self, command_line: str, _stdin: bytes) -> Reply:
        words = shlex.split(command_line)
        stages, current = [], []  # type: ignore[var-annotated]
        for word in [*words, "|"]:
            if word == "|":
                stages.append(current)
                current = []
            else:
                current.append(word)
        first = stages[0][4:] if stages[0][0] == "timeout" else stages[0]
        if first[:2] == ["sudo", "-n"]:
            if not self.sudo_ok:
                return Reply(1, b"", b"sudo: a password is required\n")
            first = first[2:]
        self.seen.append(first)
        status, out, err = self._tool(first)
        for stage in stages[1:]:
            status, out = self._filter(stage, out)
        return Reply(status, out, err)

    def _tool(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        if argv == ["/usr/sbin/postconf", "-h", "maillog_file"]:
            return 0, f"{self.maillog_file}\n".encode(), b""
        if argv == ["/bin/date", "+%z"]:
            return 0, b"+0000\n", b""
        if argv[:4] == ["/usr/bin/stat", "-L", "-c", "%s %n"]:
            found = [p for p in argv[4:] if p == self.maillog_file and self.log]
            missing = [p for p in argv[4:] if p not in found]
            out = "".join(f"{len(self.log)} {p}\n" for p in found).encode()
            err = "".join(f"stat: cannot statx '{p}': No such file\n" for p in missing).encode()
            return (1 if missing else 0), out, err
        if argv[:2] == ["/usr/bin/tail", "-c"] and argv[3] == self.maillog_file:
            return 0, self.log[int(argv[2]) - 1 :], b""
        if argv[0] == "/bin/journalctl":
            return 0, self.journal, b""
        return 1, b"", f"fake host: {argv} is not simulated\n".encode()

    @staticmethod
    def _filter(stage: list[str], data: bytes) -> tuple[int, bytes]:
        if stage[:2] == ["/usr/bin/head", "-c"]:
            return 0, data[: int(stage[2])]
        assert stage == ["/bin/grep", "-a", "-F", " status="], stage
        kept = [line + b"\n" for line in data.split(b"\n") if b" status=" in line]
        return (0 if kept else 1), b"".join(kept)


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


async def read(services: Services, text: str) -> tuple[log_command.LogReport, Context]:
    request = Request(source="console", user_id="console:test", text=text)
    ctx = Context(services, request, Identity("console", "console:test", None))
    words = text.split()
    args = log_command.parse(argparse.Namespace(target=words[1], options=words[2:]))
    return await log_command.run(args, ctx), ctx


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
