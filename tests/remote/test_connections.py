"""Connection reuse, the per-host session cap, reconnecting, and refusing to connect."""

from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from bot.demo.ssh import Reply, ScriptedSSHServer, SilentTCPServer, static_handler, unused_port
from bot.errors import AuthFailed, HostKeyMismatch, HostUnreachable
from bot.remote.command import RemoteCommand
from bot.remote.ssh import SSHExecutor, _may_retry

LIST = RemoteCommand(("/usr/sbin/postqueue", "-j"))
PURGE = RemoteCommand(("/usr/sbin/postsuper", "-d", "ABCDEF1234"), sudo=True, changes_queue=True)


async def test_one_connection_serves_many_commands(make_server, host_for, executor):
    server = await make_server(static_handler(0, b"ok\n"))
    host = host_for(server)
    for _ in range(20):
        assert (await executor.run(host, LIST)).stdout == "ok\n"
    assert server.connections_accepted == 1


async def test_concurrent_first_use_opens_one_connection(make_server, host_for, executor):
    server = await make_server(static_handler(0, b"ok\n"))
    host = host_for(server)
    results = await asyncio.gather(*(executor.run(host, LIST) for _ in range(8)))
    assert {r.stdout for r in results} == {"ok\n"}
    assert server.connections_accepted == 1


async def test_sessions_per_host_are_capped(make_server, host_for, executor):
    running = peak = 0

    async def slow(command_line: str, stdin: bytes) -> Reply:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return Reply(0)

    server = await make_server(slow)
    host = host_for(server, max_sessions=3)
    await asyncio.gather(*(executor.run(host, LIST) for _ in range(12)))
    assert peak == 3


@pytest.mark.parametrize("command", [LIST, PURGE], ids=["read", "destructive"])
@pytest.mark.parametrize("how", ["idle-close", "abort"])
async def test_reconnects_after_server_dropped_the_connection(
    make_server, host_for, executor, command, how
):
    server = await make_server(static_handler(0, b"ok\n"))
    host = host_for(server)
    await executor.run(host, command)
    if how == "abort":
        server.disconnect_all()
    else:
        await server.close_idle()
    assert (await executor.run(host, command)).stdout == "ok\n"
    assert server.connections_accepted == 2
    assert len(server.commands) == 2  # nothing ran twice


def test_only_unstarted_or_read_only_commands_are_retried():
    closed = asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "SSH connection closed")
    lost = asyncssh.ConnectionLost("Connection lost")
    exec_failed = asyncssh.ChannelOpenError(
        asyncssh.OPEN_REQUEST_SESSION_FAILED, "Session request failed"
    )
    assert _may_retry(PURGE, closed)
    assert _may_retry(LIST, lost)
    assert not _may_retry(PURGE, lost)
    assert not _may_retry(PURGE, exec_failed)


async def test_host_key_mismatch_is_refused_before_any_command(
    make_server, host_for, executor, client_key
):
    server = await make_server(static_handler())
    impostor = ScriptedSSHServer(static_handler(), client_key.public_key)
    impostor.port = server.port
    host = host_for(server)
    impostor.write_known_hosts(host.known_hosts)
    with pytest.raises(HostKeyMismatch, match="does not match the pinned key"):
        await executor.run(host, LIST)
    assert server.commands == []


async def test_known_hosts_is_parsed_once_and_read_again_when_it_changes(
    make_server, host_for, client_key, monkeypatch
):
    server = await make_server(static_handler(0, b"ok\n"))
    host = host_for(server)
    parsed: list[str] = []
    real = asyncssh.import_known_hosts

    def counting(text: str) -> asyncssh.SSHKnownHosts:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(asyncssh, "import_known_hosts", counting)
    for _ in range(3):  # three fresh connections, one parse
        async with SSHExecutor() as fresh:
            assert (await fresh.run(host, LIST)).stdout == "ok\n"
    assert parsed == [host.known_hosts.read_text()]
    # The host is rebuilt: the file now pins another key (same length, same second), so it
    # is parsed again at once and the connection refused.
    impostor = ScriptedSSHServer(static_handler(), client_key.public_key)
    impostor.port = server.port
    impostor.write_known_hosts(host.known_hosts)
    async with SSHExecutor() as fresh:
        with pytest.raises(HostKeyMismatch, match="does not match the pinned key"):
            await fresh.run(host, LIST)
    assert len(parsed) == 2


async def test_host_without_pinned_key_is_refused(make_server, host_for, executor, client_key):
    server = await make_server(static_handler())
    host = host_for(server)
    other = ScriptedSSHServer(static_handler(), client_key.public_key)
    other.port = server.port + 1
    other.write_known_hosts(host.known_hosts)
    with pytest.raises(HostKeyMismatch, match="ssh-keyscan"):
        await executor.run(host, LIST)
    assert server.commands == []


async def test_missing_known_hosts_file_is_refused(make_server, host_for, executor, tmp_path):
    server = await make_server(static_handler())
    host = host_for(server, known_hosts=tmp_path / "absent")
    with pytest.raises(HostKeyMismatch, match=r"does not exist.*ssh-keyscan"):
        await executor.run(host, LIST)
    assert server.connections_accepted == 0


async def test_wrong_client_key_is_auth_failed(make_server, host_for, executor, tmp_path):
    from bot.demo.ssh import generate_client_key

    server = await make_server(static_handler())
    stranger = generate_client_key(tmp_path / "other")
    with pytest.raises(AuthFailed, match="authorized_keys"):
        await executor.run(host_for(server, private_key=stranger.private_key), LIST)
    assert server.commands == []


async def test_closed_port_is_unreachable_quickly(host_for, executor):
    host = host_for(None, port=unused_port(), connect_timeout=5, login_timeout=5)
    host.known_hosts.write_text("")
    started = time.monotonic()
    with pytest.raises(HostUnreachable, match=r"Connection refused\. Check the address/port"):
        await executor.run(host, LIST)
    assert time.monotonic() - started < 3  # refused at once, not after the 10 s of timeouts


async def test_silent_tcp_server_is_unreachable_within_the_timeout(host_for, executor):
    async with SilentTCPServer() as silent:
        host = host_for(None, port=silent.port, connect_timeout=0.5, login_timeout=0.5)
        host.known_hosts.write_text("")
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as caught:
            await executor.run(host, LIST)
        assert time.monotonic() - started < 3
        assert silent.connections_accepted == 1
    assert "sshd" in caught.value.user_message


async def test_one_unreachable_host_does_not_block_another(make_server, host_for, executor):
    server = await make_server(static_handler(0, b"ok\n"))
    good = host_for(server)
    async with SilentTCPServer() as silent:
        bad = host_for(None, name="mx2", port=silent.port, connect_timeout=1, login_timeout=1)
        bad.known_hosts.write_text(server.known_hosts_line())
        started = time.monotonic()
        results = await asyncio.gather(
            executor.run(bad, LIST), executor.run(good, LIST), return_exceptions=True
        )
        assert isinstance(results[0], HostUnreachable)
        assert not isinstance(results[1], BaseException)
        assert results[1].stdout == "ok\n"
        assert time.monotonic() - started < 4


async def test_closed_executor_refuses_work(host_for):
    executor = SSHExecutor()
    await executor.close()
    with pytest.raises(RuntimeError, match="closed"):
        await executor.run(host_for(None), LIST)


async def test_commands_queued_behind_a_failed_connect_fail_with_it(host_for, executor):
    async with SilentTCPServer() as silent:
        host = host_for(None, port=silent.port, connect_timeout=1, login_timeout=1)
        host.known_hosts.write_text("")
        started = time.monotonic()
        results = await asyncio.gather(
            *(executor.run(host, LIST) for _ in range(4)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    assert all(isinstance(r, HostUnreachable) for r in results)
    assert silent.connections_accepted == 1
    assert elapsed < 3  # one wait, not four in a row
