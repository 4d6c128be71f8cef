"""Postfix before 3.1 (``postqueue -p`` only) on a host at UTC-5, through the real executor:
arrival times are the host's local time, so mailqbot asks ``date +%z`` once (cached like the
postconf settings) and a message that arrived 30 minutes ago is 30 minutes old."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import render
from bot.errors import ParseError
from bot.postfix.reader import read_host, stream_queue
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from commands.summary import HostSummary
from helpers.onehost import one_host

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
FIXTURE = Path(__file__).resolve().parent.parent / "data" / "versions" / "postqueue-p-3.0-utc-5.txt"
POSTCONF = {
    "mail_version": "3.0.4",
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "5d",
    "queue_directory": "/var/spool/postfix",
}
Answer = tuple[int, bytes, bytes]


def listing() -> bytes:
    lines = FIXTURE.read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#")).encode()


def legacy_host(offset: str = "-0500") -> Callable[[str, bytes], Awaitable[Answer]]:
    async def handle(command_line: str, _stdin: bytes) -> Answer:
        argv = command_line.split()[4:]  # after "timeout -k 5 N"
        if argv[:2] == ["/usr/sbin/postconf", "-h"]:
            return 0, "".join(POSTCONF[n] + "\n" for n in argv[2:]).encode(), b""
        if argv == ["/bin/date", "+%z"]:
            return 0, f"{offset}\n".encode(), b""
        if argv == ["/usr/sbin/postqueue", "-p"]:
            return 0, listing(), b""
        return 1, b"", b"not scripted\n"

    return handle


async def test_a_30_minute_old_message_on_a_utc_minus_5_host_is_30_minutes_old(
    tmp_path: Path,
) -> None:
    async with one_host(tmp_path, legacy_host()) as (host, server), SSHExecutor() as executor:
        remote = Remote.reader(executor)
        reading = await read_host(remote, host, NOW)
        again = await read_host(remote, host, NOW)
        seen: list[float] = []
        await stream_queue(remote, host, NOW, lambda m: seen.append(NOW - m.arrival_time))
    summary = reading.summary
    assert summary.oldest_deferred.regular == NOW - 30 * 60
    assert summary.oldest is not None
    assert (summary.oldest.queue_id, NOW - summary.oldest.arrival_time) == (
        "3F67B16B2EE", 3 * 3600 + 600,
    )  # fmt: skip
    assert seen == [30 * 60, 3 * 3600 + 600, 5]
    assert again.summary == summary
    # Asked once per host and executor, like the postconf settings.
    assert [c.split()[4:] for c in server.commands].count(["/bin/date", "+%z"]) == 1
    records = [r["command"] for r in remote.records_json()]
    assert records.count("timeout -k 5 10 /bin/date +%z") == 1
    text = render.render("summary", HostSummary("mx1", summary, reading.settings, None)).text
    assert "Oldest deferred message reaches maximal_queue_lifetime (5d) in 4d 23h" in text


async def test_a_host_answering_no_offset_is_refused_not_guessed(tmp_path: Path) -> None:
    async with (
        one_host(tmp_path, legacy_host(offset="EST")) as (host, _server),
        SSHExecutor() as executor,
    ):
        with pytest.raises(ParseError, match="not a UTC offset"):
            await read_host(Remote.reader(executor), host, NOW)
