"""A host that prints without end cannot fill the bot's memory."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.actions import perform
from bot.demo.ssh import Reply
from bot.errors import CommandFailed, OutputTooLarge
from bot.postfix import logreader
from bot.remote import ssh
from bot.remote.command import RemoteCommand
from bot.remote.ssh import RUN_OUTPUT_LIMIT, STDERR_LIMIT, MiB

POSTCONF = RemoteCommand(("/usr/sbin/postconf", "-P"))
PURGE = RemoteCommand(("/usr/sbin/postsuper", "-d", "-", "deferred"), sudo=True, changes_queue=True)
FLOOD = 200 * MiB
BLOCK = b"x" * (256 * 1024)


def rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


async def peak_rss_growth(work: asyncio.Future[object]) -> tuple[float, BaseException | None]:
    """MiB the resident set grew above where it was, sampled while ``work`` runs."""
    before = peak = rss_kib("VmRSS")
    while not work.done():
        peak = max(peak, rss_kib("VmRSS"))
        await asyncio.sleep(0.005)
    return (peak - before) / 1024, work.exception()


async def test_run_refuses_output_beyond_its_limit_and_memory_stays_flat(
    make_server, host_for, executor
):
    """200 MiB of standard output: a typed error that says what to do, the channel closed,
    and the resident set grows by a few tens of MiB at most (before: 600 MiB)."""
    stopped = asyncio.Event()
    sent = 0

    async def flood() -> AsyncIterator[bytes]:
        nonlocal sent
        try:
            while sent < FLOOD:
                sent += len(BLOCK)
                yield BLOCK
        finally:
            stopped.set()

    async def handler(command_line: str, stdin: bytes) -> Reply:
        if "postconf" in command_line:
            return Reply(0, flood())
        return Reply(0, b"still fine\n")

    server = await make_server(handler)
    host = host_for(server)
    growth, error = await peak_rss_growth(asyncio.ensure_future(executor.run(host, POSTCONF)))
    assert isinstance(error, OutputTooLarge)
    assert isinstance(error, CommandFailed)
    assert "printed more than 16 MiB" in error.user_message
    assert "safe to retry" in error.user_message
    assert "check what `/usr/sbin/postconf` is on mx1" in error.user_message
    print(f"resident set grew by {growth:.1f} MiB")
    assert growth < 48, f"resident set grew by {growth:.0f} MiB"
    await asyncio.wait_for(stopped.wait(), 5)
    assert sent < FLOOD / 2  # the host was stopped, not read to the end
    after = await executor.run(host, RemoteCommand(("/bin/echo",)))
    assert after.stdout == "still fine\n"


async def test_a_destructive_command_that_floods_has_an_unknown_outcome(
    make_server, host_for, executor
):
    async def handler(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, b"y" * (2 * MiB))

    server = await make_server(handler)
    with pytest.raises(OutputTooLarge, match="printed more than 1 MiB") as caught:
        await executor.run(host_for(server), PURGE, max_output=MiB)
    assert "outcome unknown" in caught.value.user_message


async def test_output_up_to_the_limit_is_kept(make_server, host_for, executor):
    async def handler(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, b"z" * MiB)

    server = await make_server(handler)
    result = await executor.run(host_for(server), POSTCONF, max_output=MiB)
    assert len(result.stdout) == MiB


async def test_stderr_keeps_its_end_only(make_server, host_for, executor, monkeypatch):
    monkeypatch.setattr(ssh, "STDERR_LIMIT", MiB)  # the same code as at 16 MiB, sooner

    async def handler(command_line: str, stdin: bytes) -> Reply:
        return Reply(1, b"", b"e" * (3 * MiB) + b"\nthe last line\n")

    server = await make_server(handler)
    result = await executor.run(host_for(server), POSTCONF, check=False)
    assert result.stderr.startswith(f"[first {2 * MiB + 15} bytes of stderr dropped]\n")
    assert result.stderr.endswith("the last line\n")
    assert len(result.stderr) < MiB + 100


def test_limits_leave_room_for_what_the_bot_reads() -> None:
    # postsuper names every message of a batch on stderr ("postsuper: <ID>: placed on
    # hold", under 80 bytes): a whole batch's report must fit what is kept of stderr.
    assert perform.BATCH * 80 < STDERR_LIMIT
    assert "more than 16 MiB to stderr" in logreader._STDERR_DROPPED  # says the limit
    assert 16 * MiB == STDERR_LIMIT
    assert RUN_OUTPUT_LIMIT >= 10_240_000  # postcat of a message at message_size_limit
