"""``/mailq summary HOST`` on scripted hosts: qshape table, lifetimes, disk use and its faults.

Each host is a real in-process SSH server whose answers are scripted here, reached through
the real executor and command; replies are checked for Block Kit's limits and escaping.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot import render
from bot.demo import demo_queue
from bot.errors import ParseError
from bot.postfix import reader as queue_module
from bot.postfix.reader import HostReading, read_host, shorten
from bot.postfix.spool import parse_settings, postfix_time
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from commands.summary import HostSummary
from helpers.blockkit import assert_valid_block_kit
from helpers.onehost import Answer, one_host

NOW = 1_795_000_000.0
POSTCONF = {
    "mail_version": "3.7.11",
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "12h",
    "queue_directory": "/var/spool/postfix",
}
DU_OK = (0, b"2048\t/var/spool/postfix/deferred\n", b"")
DU_NO_SUDO = (1, b"", b"sudo: a password is required\n")


def tool(command_line: str) -> list[str]:
    words = command_line.split()
    words = words[4:] if words[:1] == ["timeout"] else words
    return words[2:] if words[:2] == ["sudo", "-n"] else words


def scripted(
    lines: list[bytes],
    du: Answer = DU_OK,
    postconf: dict[str, str] | None = None,
) -> Callable[[str, bytes], Awaitable[Answer]]:
    values = POSTCONF | (postconf or {})

    async def handle(command_line: str, _stdin: bytes) -> Answer:
        argv = tool(command_line)
        if argv[:2] == ["/usr/sbin/postconf", "-h"]:
            return 0, "".join(values[n] + "\n" for n in argv[2:] if n in values).encode(), b""
        if argv == ["/usr/sbin/postqueue", "-j"]:
            return 0, b"".join(lines), b""
        if argv[:1] == ["/usr/bin/du"]:
            return du
        return 1, b"", b"not scripted\n"

    return handle


async def quiet(_text: str) -> None:
    return None


async def read(
    tmp_path: Path, lines: list[bytes], **script: Any
) -> tuple[HostReading, list[dict[str, Any]], list[str]]:
    async with one_host(tmp_path, scripted(lines, **script)) as (host, server):
        async with SSHExecutor() as executor:
            gateway = Remote.reader(executor)
            reading = await read_host(gateway, host, NOW, disk=True)
        return reading, gateway.records_json(), server.commands


def model(reading: HostReading) -> HostSummary:
    return HostSummary("mx1", reading.summary, reading.settings, reading.disk)


async def test_summary_reads_settings_queue_and_disk_in_three_commands(tmp_path: Path) -> None:
    reading, remote, commands = await read(tmp_path, demo_queue("mx1", 300, NOW))
    assert commands[0].endswith(
        "/usr/sbin/postconf -h mail_version maximal_queue_lifetime bounce_queue_lifetime "
        "queue_directory"
    )
    assert sorted(c.split()[-1] for c in commands[1:]) == ["-j", "/var/spool/postfix/deferred"]
    assert "sudo -n /usr/bin/du -sk /var/spool/postfix/deferred" in commands[2] + commands[1]
    # du runs alongside the listing: its record comes when it ends
    assert remote[0]["command"].endswith("queue_directory")
    assert sorted(r["command"].split()[-1] for r in remote[1:]) == [
        "-j", "/var/spool/postfix/deferred",
    ]  # fmt: skip
    assert reading.settings.maximal_queue_lifetime == 5 * 86400
    assert reading.settings.bounce_queue_lifetime == 12 * 3600
    assert reading.disk is not None
    assert reading.disk.bytes == 2048 * 1024
    text = render.render("summary", model(reading)).text
    assert "Deferred spool on disk: 2.0 MiB" in text


async def test_settings_are_reused_by_the_same_executor_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with one_host(tmp_path, scripted(demo_queue("mx1", 40, NOW))) as (host, server):
        async with SSHExecutor() as executor:
            gateways = [Remote.reader(executor) for _ in range(3)]
            first = await read_host(gateways[0], host, NOW, disk=True)
            second = await read_host(gateways[1], host, NOW, disk=True)
            monkeypatch.setattr(queue_module, "SETTINGS_TTL", 0.0)
            await read_host(gateways[2], host, NOW)
        records = [gateway.records_json() for gateway in gateways]
        async with SSHExecutor() as fresh:
            await read_host(Remote.reader(fresh), host, NOW)
    postconf = [c for c in server.commands if "/usr/sbin/postconf" in c]
    assert len(postconf) == 3  # first read, after the TTL, and on a new executor
    assert ["postconf" in r["command"] for r in records[1]] == [False, False]
    assert any("postconf" in r["command"] for r in records[2])
    assert second.settings == first.settings
    assert second.summary == first.summary
    assert second.disk == first.disk


@pytest.mark.parametrize(
    ("du", "problem"),
    [
        (DU_NO_SUDO, "sudo rule missing"),
        ((1, b"", b"du: cannot read directory 'x': Permission denied\n"), "du exited 1: du: "),
        ((0, b"garbage\n", b""), "unexpected du output"),
    ],
)
async def test_disk_use_problems_never_fail_the_summary(
    tmp_path: Path, du: Answer, problem: str
) -> None:
    reading, remote, _ = await read(tmp_path, demo_queue("mx1", 50, NOW), du=du)
    assert reading.disk is not None
    assert reading.disk.bytes is None
    assert reading.disk.problem.startswith(problem)
    assert reading.summary.total_messages >= 50
    assert len(remote) == 3  # the failed du is audited too
    rendered = render.render("summary", model(reading))
    assert f"disk use unavailable ({problem}" in rendered.text
    assert_valid_block_kit(rendered.blocks)


async def test_unusable_queue_directory_skips_du(tmp_path: Path) -> None:
    reading, remote, commands = await read(
        tmp_path, [], postconf={"queue_directory": "$data_directory/q"}
    )
    assert reading.disk is not None
    assert reading.disk.problem == "queue_directory not usable"
    assert not any("du" in c.split() or "/usr/bin/du" in c for c in commands)
    assert len(remote) == 2


async def test_expiry_uses_the_lifetime_of_each_kind_of_sender(tmp_path: Path) -> None:
    rcpt = [{"address": "a@b.test", "delay_reason": "connect to x[1.2.3.4]:25: Connection refused"}]
    lines = [
        orjson.dumps(
            {"queue_name": "deferred", "queue_id": qid, "arrival_time": int(NOW) - age,
             "message_size": 10, "sender": sender, "recipients": rcpt}
        ) + b"\n"
        for qid, age, sender in [
            ("AAAAAA", 4 * 86400, "a@x.test"),  # regular: 1 day left of 5
            ("BBBBBB", 11 * 3600, "MAILER-DAEMON"),  # bounce: 1 hour left of 12
        ]
    ]  # fmt: skip
    reading, _, _ = await read(tmp_path, lines)
    summary = model(reading)
    assert summary.expiry is not None
    assert summary.expiry.parameter == "bounce_queue_lifetime"
    assert summary.expiry.left(NOW) == 3600
    rendered = render.render("summary", summary)
    assert "reaches bounce_queue_lifetime (12h) in 1h" in rendered.text
    assert_valid_block_kit(rendered.blocks)

    late, _, _ = await read(tmp_path / "late", lines, postconf={"bounce_queue_lifetime": "1h"})
    assert "is past bounce_queue_lifetime (1h) by 10h" in render.render("summary", model(late)).text


def test_postconf_values() -> None:
    settings = parse_settings("3.7.11\n5d\n$maximal_queue_lifetime\n/var/spool/postfix\n")
    assert settings.bounce_queue_lifetime == settings.maximal_queue_lifetime == 5 * 86400
    odd = parse_settings("3.7.11\n2w\n${nope}\nrelative/dir\n")
    assert (odd.maximal_queue_lifetime, odd.bounce_queue_lifetime) == (14 * 86400, None)
    assert odd.queue_directory is None
    for bad in ("", "3.7.11\n5d\n", "3.7.11\n5d\n5d\n/q\nextra\n"):
        with pytest.raises(ParseError):
            parse_settings(bad)
    assert [postfix_time(v, "d") for v in ("7", "3600s", "2h", "90m", "1w", "5 d", "-1")] == [
        7 * 86400, 3600, 7200, 5400, 7 * 86400, None, None,
    ]  # fmt: skip


async def test_many_and_hostile_domains_fit_block_kit_and_go_to_a_file(tmp_path: Path) -> None:
    lines = [
        orjson.dumps(
            {"queue_name": "deferred", "queue_id": f"{0xA00000 + n:X}",
             "arrival_time": int(NOW) - n * 37, "message_size": 10,
             "sender": f"<!channel>@s{n % 40}.test",
             "recipients": [{"address": f"u@<!here>{'x' * (n % 90)}{n}.test",
                             "delay_reason": "```<!channel> 450 try later"}]}
        ) + b"\n"
        for n in range(400)
    ]  # fmt: skip
    reading, _, _ = await read(tmp_path, lines)
    rendered = render.render("summary", model(reading))
    assert_valid_block_kit(rendered.blocks)
    everything = json.dumps(rendered.blocks)
    assert "<!channel>" not in everything
    assert "<!here>" not in everything
    assert "390 more domains in the attached file" in everything
    assert rendered.attachment is not None
    assert rendered.attachment.filename.startswith("qshape-mx1-")
    content = rendered.attachment.content
    assert "recipients by recipient domain (200 of 400 domains)" in content  # rows are capped
    assert "messages by sender domain (40 of 40 domains)" in content


def test_shorten() -> None:
    assert shorten("First part. Second part.", 80) == "First part."
    assert shorten("one   line\nonly", 80) == "one line only"
    assert shorten("x" * 100, 10) == "x" * 9 + "…"
