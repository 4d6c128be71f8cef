"""``/mailq log`` from each kind of source the config can name, and on a log that mixes Postfix
versions, through the real executor and pipeline on a scripted SSH host
(``helpers.loghost.FakeHost`` emulates the tools byte for byte; here it also answers
``docker logs``)."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import render
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.demo.ssh import ScriptedSSHServer, generate_client_key
from bot.errors import CommandFailed
from bot.inventory import Inventory, parse_config
from bot.settings import Settings
from helpers.blockkit import all_text, assert_valid_block_kit
from helpers.loghost import LOG, NOW, FakeHost, make_log, read

VERSIONS = Path(__file__).resolve().parent.parent / "data" / "versions"
STAMP = "2026-11-28T11:30:00.123456789Z "
DEFERRED = (
    "Nov 28 11:30:00 mx postfix/smtp[7]: 1F2E3D4C5B6: to=<a@example.com>, relay=none, "
    "delay=30, delays=0/0/30/0, tls=may?, dsn=4.4.1, status=deferred (connect to "
    "mx.example.com[203.0.113.5]:25: Connection timed out)"
)


def fixture(name: str) -> bytes:
    lines = (VERSIONS / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#")).encode()


@dataclass
class SourcesHost(FakeHost):
    """Also answers ``docker logs`` (stdout and the container's stderr) and a unit's journal."""

    container_out: bytes = b""
    container_err: bytes = b""

    def _tool(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        if argv[:3] == ["/usr/bin/docker", "logs", "--timestamps"]:
            if argv[-1] != "mail-postfix-1":
                message = f"Error response from daemon: No such container: {argv[-1]}\n"
                return 1, b"", message.encode()
            return 0, self.container_out, self.container_err
        if argv[:2] == ["/bin/journalctl", "_SYSTEMD_UNIT=postfix@-.service"]:
            return 0, self.journal, b""
        return super()._tool(argv)


@asynccontextmanager
async def serve(fake: FakeHost, tmp_path: Path, db_url: str, log: str) -> AsyncIterator[Services]:
    key = generate_client_key(tmp_path)
    async with ScriptedSSHServer(fake, key.public_key) as server:
        known = server.write_known_hosts(tmp_path / "known_hosts")
        config = (
            f'[ssh]\nuser = "mailqbot"\nprivate_key = "{key.private_key}"\n'
            f'known_hosts = "{known}"\nsudo = true\nconnect_timeout = "5s"\n\n'
            f'[[hosts]]\nname = "mx1"\naddress = "{server.address}"\nport = {server.port}\n'
            f'groups = ["edge", "containers"]\n\n{log}'
        )
        inventory = Inventory(parse_config(config, "<test>"))
        async with open_services(Settings(DATABASE_URL=db_url), inventory) as services:
            yield replace(services, clock=lambda: NOW)


async def test_a_log_mixing_3_7_and_3_11_is_read_and_unreadable_lines_are_reported(
    tmp_path: Path, db_url: str
) -> None:
    fake = SourcesHost(log=fixture("maillog-mixed-3.7-3.11.log"))
    async with serve(fake, tmp_path, db_url, "") as services:
        outcome = await handle(
            Request(source="console", user_id="console:test", text="log mx1 since=1h"), services
        )
        report, _ = await read(services, "log mx1 since=1h")
    assert outcome.ok, outcome.reply.text
    text = outcome.reply.text
    # Both versions' lines are counted: 3.7's and 3.11's (whose tls= used to hide them).
    table = "status       lines\nsent             3\ndeferred         4\nbounced          1\n"
    assert table in text
    assert "\nquarantined      1\n" in text
    assert "does not know (counted below under their own names): quarantined (1)" in text
    assert "downgraded from a to b): dane? 1 · may 1" in text
    assert "3 status lines could not be read" in text
    assert "  <22>1 2026-11-28T11:12:07.000Z mail postfix/smtp 31007" in text
    assert report.read.malformed == 3
    rendered = render.render("log", report)
    shown = all_text(rendered.blocks)
    assert "3 status lines could not be read" in shown
    assert r"\"&lt;!channel&gt;\"@evil.test" in shown  # an example, escaped: pings nobody
    assert "<!channel>" not in shown
    assert_valid_block_kit(rendered.blocks)


async def test_a_configured_file_is_read_without_asking_postconf(
    tmp_path: Path, db_url: str
) -> None:
    fake = SourcesHost(log=make_log(days=1), maillog_file="/srv/logs/postfix.log")
    log = '[log]\nsource = "file"\npath = "/srv/logs/postfix.log"\n'
    async with serve(fake, tmp_path, db_url, log) as services:
        report, ctx = await read(services, "log mx1 since=6h")
    assert ["/usr/sbin/postconf", "-h", "maillog_file"] not in fake.seen
    assert report.source.label == "/srv/logs/postfix.log"
    assert report.count("deferred") == 72
    assert any("/usr/bin/tail -c +" in r["command"] for r in ctx.remote_records())


async def test_a_missing_configured_file_says_where_it_looked(tmp_path: Path, db_url: str) -> None:
    log = '[log]\nsource = "file"\npath = "/srv/logs/postfix.log"\n'
    async with serve(SourcesHost(log=make_log(days=1)), tmp_path, db_url, log) as services:
        with pytest.raises(CommandFailed, match=r"/srv/logs/postfix.log \(the config's \[log\]\)"):
            await read(services, "log mx1")


async def test_a_groups_journal_unit(tmp_path: Path, db_url: str) -> None:
    journal = (f"2026-11-28T11:30:00.000000+0000 {DEFERRED[16:]}\n" * 5).encode()
    fake = SourcesHost(maillog_file=LOG, journal=journal)
    log = '[log.groups.edge]\nsource = "journal"\nunit = "postfix@-.service"\n'
    async with serve(fake, tmp_path, db_url, log) as services:
        report, ctx = await read(services, "log mx1 since=1h")
    assert fake.seen[-1][:2] == ["/bin/journalctl", "_SYSTEMD_UNIT=postfix@-.service"]
    assert ["/usr/sbin/postconf", "-h", "maillog_file"] not in fake.seen
    assert report.source.label == "the journal (unit postfix@-.service)"
    assert (report.count("deferred"), report.read.malformed) == (5, 0)
    assert ctx.remote_records()[-1]["command"] == (
        "timeout -k 5 60 sudo -n /bin/journalctl _SYSTEMD_UNIT=postfix@-.service "
        f"--since=@{int(NOW) - 3600} --until=@{int(NOW) + 1} -o short-iso-precise --no-pager -q"
        " | /bin/grep -a -F ' status='"
    )


async def test_a_container_read_with_docker_logs(tmp_path: Path, db_url: str) -> None:
    out = "".join(STAMP + line + "\n" for line in [DEFERRED] * 4 + ["postfix/master: ready"])
    err = STAMP + DEFERRED.replace("status=deferred", "status=sent") + "\n"
    fake = SourcesHost(container_out=out.encode(), container_err=err.encode())
    log = '[log.groups.containers]\nsource = "container"\ncontainer = "mail-postfix-1"\n'
    async with serve(fake, tmp_path, db_url, log) as services:
        report, ctx = await read(services, "log mx1 since=1h")
    start = datetime.fromtimestamp(NOW - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = datetime.fromtimestamp(NOW + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shlex.split(ctx.remote_records()[-1]["command"])[4:] == [
        "sudo", "-n", "/usr/bin/docker", "logs", "--timestamps", f"--since={start}",
        f"--until={end}", "mail-postfix-1", "|", "/bin/grep", "-a", "-F", " status=",
    ]  # fmt: skip
    assert report.source.label == "docker logs of container mail-postfix-1"
    # Four deferrals on stdout, one delivery the container wrote to stderr.
    assert (report.count("deferred"), report.count("sent"), report.read.malformed) == (4, 1, 0)
    assert report.a.first_seen == datetime.fromisoformat(STAMP.strip()).timestamp()


async def test_a_container_runtime_error_is_not_taken_for_log_lines(
    tmp_path: Path, db_url: str
) -> None:
    log = '[log.groups.containers]\nsource = "container"\ncontainer = "postfix"\n'
    async with serve(SourcesHost(), tmp_path, db_url, log) as services:
        with pytest.raises(CommandFailed, match="No such container: postfix"):
            await read(services, "log mx1 since=1h")


async def test_a_container_stderr_cut_by_the_executor_is_reported_not_hidden(
    tmp_path: Path, db_url: str
) -> None:
    err = "[first 999 bytes of stderr dropped]\n" + STAMP + DEFERRED + "\n"
    fake = SourcesHost(container_out=(STAMP + DEFERRED + "\n").encode(), container_err=err.encode())
    log = '[log.groups.containers]\nsource = "container"\ncontainer = "mail-postfix-1"\n'
    async with serve(fake, tmp_path, db_url, log) as services:
        report, _ = await read(services, "log mx1 since=1h")
    assert (report.count("deferred"), report.read.malformed) == (2, 1)
    assert report.read.examples[0].startswith("(the container wrote more than 16 MiB to stderr")
