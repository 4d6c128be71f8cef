"""Running one command: output, exit status, typed failures, quoting."""

from __future__ import annotations

import asyncio
import shlex
import time

import pytest

from bot.demo.ssh import Reply, static_handler
from bot.errors import CommandFailed, CommandTimeout, SudoPasswordRequired
from bot.remote.command import RemoteCommand

POSTQUEUE = RemoteCommand(("/usr/sbin/postqueue", "-j"), remote_timeout=30)


async def test_run_returns_output_exit_and_host_key(make_server, host_for, executor):
    server = await make_server(static_handler(0, b"hello \xff\n", b"note\n"))
    result = await executor.run(host_for(server), POSTQUEUE)
    assert (result.exit_status, result.stdout, result.stderr) == (0, "hello \ufffd\n", "note\n")
    assert result.host == "mx1"
    assert result.command_line == "timeout -k 5 10 /usr/sbin/postqueue -j"
    assert result.host_key_fingerprint == server.host_key_fingerprint()
    assert result.host_key_fingerprint.startswith("SHA256:")
    assert server.commands == [result.command_line]


async def test_stdin_reaches_the_command(make_server, host_for, executor):
    async def echo(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, stdin[::-1])

    server = await make_server(echo)
    ids = b"4BCD5E6F7A\n3ABC9D8E7F\n"
    result = await executor.run(host_for(server), POSTQUEUE, stdin=ids)
    assert result.stdout == ids[::-1].decode()


async def test_remote_timeout_is_capped_by_host_command_timeout(make_server, host_for, executor):
    server = await make_server(static_handler())
    result = await executor.run(host_for(server, command_timeout=5), POSTQUEUE)
    assert shlex.split(result.command_line)[:4] == ["timeout", "-k", "5", "5"]


@pytest.mark.parametrize(
    "argument", ["two words", "it's", 'say "hi"', "x; rm -rf /", "$(reboot)", "`id`", "a\nb", ""]
)
async def test_hostile_argument_stays_one_argument(make_server, host_for, executor, argument):
    async def argv(command_line: str, stdin: bytes) -> Reply:
        return Reply(0, "\0".join(shlex.split(command_line)).encode())

    server = await make_server(argv)
    command = RemoteCommand(("/usr/sbin/postsuper", "-d", argument), sudo=True)
    result = await executor.run(host_for(server), command)
    assert result.stdout.split("\0") == [
        *("timeout", "-k", "5", "10", "sudo", "-n"),
        *("/usr/sbin/postsuper", "-d", argument),
    ]


async def test_nonzero_exit_raises_command_failed(make_server, host_for, executor):
    stderr = b"postqueue: fatal: Flush service is not configured\n"
    server = await make_server(static_handler(69, b"", stderr))
    with pytest.raises(CommandFailed) as caught:
        await executor.run(host_for(server), POSTQUEUE)
    assert caught.value.exit_status == 69
    assert "Flush service is not configured" in caught.value.stderr
    assert "exited with status 69" in caught.value.user_message
    assert "run the command on the host" in caught.value.user_message


async def test_check_false_returns_the_failure(make_server, host_for, executor):
    server = await make_server(static_handler(69, b"partial", b"bad\n"))
    result = await executor.run(host_for(server), POSTQUEUE, check=False)
    assert (result.exit_status, result.stdout, result.stderr) == (69, "partial", "bad\n")


async def test_a_host_without_sudo_never_gets_it(make_server, host_for, executor):
    """``sudo = false`` (root login, or the forced-command wrapper): no line starts with sudo."""
    server = await make_server(static_handler())
    command = RemoteCommand(("/usr/sbin/postsuper", "-d", "-", "deferred"), sudo=True)
    result = await executor.run(host_for(server, sudo=False), command, stdin=b"ABCDEF1234\n")
    assert server.commands == ["timeout -k 5 10 /usr/sbin/postsuper -d - deferred"]
    assert result.command_line == server.commands[0]
    await executor.run(host_for(server), command)  # the same command where sudo is on
    assert server.commands[1] == "timeout -k 5 10 sudo -n /usr/sbin/postsuper -d - deferred"


async def test_sudo_password_prompt_is_a_clear_failure(make_server, host_for, executor):
    server = await make_server(static_handler(1, b"", b"sudo: a password is required\n"))
    command = RemoteCommand(("/usr/sbin/postsuper", "-d", "ABCDEF1234"), sudo=True)
    with pytest.raises(SudoPasswordRequired, match="sudoers snippet"):
        await executor.run(host_for(server), command)


async def test_remote_timeout_exit_124_is_a_timeout(make_server, host_for, executor):
    server = await make_server(static_handler(124))
    command = RemoteCommand(("/usr/sbin/postsuper", "-d", "ALL"), sudo=True, changes_queue=True)
    with pytest.raises(CommandTimeout, match="outcome unknown"):
        await executor.run(host_for(server), command)


@pytest.mark.parametrize(("destructive", "advice"), [(False, "safe to retry"), (True, "unknown")])
async def test_hung_command_times_out(make_server, host_for, executor, destructive, advice):
    cancelled = asyncio.Event()

    async def hang(command_line: str, stdin: bytes) -> Reply:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    server = await make_server(hang)
    command = RemoteCommand(
        ("/usr/sbin/postqueue", "-p"), remote_timeout=0.3, changes_queue=destructive
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=advice) as caught:
        await executor.run(host_for(server), command)
    assert time.monotonic() - started < 3
    assert "within 0.8 s" in caught.value.user_message
    await asyncio.wait_for(cancelled.wait(), 2)  # the channel was closed on the server too
