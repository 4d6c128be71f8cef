"""The SSH executor against the lab's real OpenSSH server and Postfix.

Every fault from SECURITY.md "Faults it must survive" that concerns reaching a host or running
a command on it, provoked for real: a clear typed error within its time limit, and the happy
path checked against Postfix's own tools run locally (the lab host is this machine).

Where a test needs to know what happened on the server side, it reads sshd's own log
(``sshd.log``), matching lines to the connection by its client port, so other users of the
lab's sshd cannot disturb it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bot.demo.ssh import SilentTCPServer, unused_port
from bot.errors import (
    AuthFailed,
    CommandTimeout,
    HostKeyMismatch,
    HostUnreachable,
    SudoPasswordRequired,
)
from bot.inventory import Host, Inventory, parse_config
from bot.remote.command import RemoteCommand
from bot.remote.ssh import SSHExecutor
from helpers.labbot import LAB_CONFIG
from helpers.labqueue import LAB_DIR

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

SSHD_LOG = LAB_DIR / "sshd.log"
KNOWN_HOSTS = LAB_DIR / "known_hosts"
SLACK = 2.0  # seconds allowed beyond a time limit (a loaded test machine)
POSTQUEUE_J = RemoteCommand(argv=("/usr/sbin/postqueue", "-j"), remote_timeout=10)
SSH_CONNECTION = RemoteCommand(argv=("/usr/bin/printenv", "SSH_CONNECTION"), remote_timeout=5)


def lab_host(**overrides: Any) -> Host:
    """The lab host from the lab's own config, with short timeouts and ``overrides``."""
    host = Inventory(parse_config(LAB_CONFIG.read_text(), str(LAB_CONFIG))).get("lab")
    fields: dict[str, Any] = {"connect_timeout": 2.0, "login_timeout": 2.0, "command_timeout": 10.0}
    fields.update(overrides)
    return host.model_copy(update=fields)


def new_key(path: Path) -> asyncssh.SSHKey:
    """A fresh ed25519 key written to ``path`` (mode 0600)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.touch(mode=0o600)
    key.write_private_key(str(path))
    return key


def local_fingerprint(known_hosts: Path) -> str:
    """The SHA256 fingerprint of the key in ``known_hosts``, as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(known_hosts)], check=True, capture_output=True, text=True
    ).stdout
    fingerprints = {line.split()[1] for line in out.splitlines() if line.strip()}
    assert len(fingerprints) == 1, out
    return fingerprints.pop()


def local_postqueue_lines() -> int:
    """Lines of `postqueue -j` run locally (the lab host is this machine): the oracle."""
    out = subprocess.run(
        ["/usr/sbin/postqueue", "-j"], check=True, capture_output=True, timeout=120
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def some_deferred(count: int) -> list[dict[str, Any]]:
    """The first ``count`` deferred messages of a local `postqueue -j` (not reading it all)."""
    found: list[dict[str, Any]] = []
    with subprocess.Popen(["/usr/sbin/postqueue", "-j"], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            if message["queue_name"] == "deferred":
                found.append(message)
                if len(found) == count:
                    break
        proc.kill()
    return found


def remote_processes(pattern: str) -> list[str]:
    """Command lines of the lab user's processes matching ``pattern``."""
    out = subprocess.run(
        ["pgrep", "-u", "mailqbot", "-a", "-f", pattern], capture_output=True, text=True
    ).stdout
    return out.splitlines()


async def wait_gone(pattern: str, deadline: float) -> tuple[float, list[str]]:
    """Poll until no process matches; (monotonic time it was first seen gone, leftovers)."""
    while True:
        left = remote_processes(pattern)
        if not left or time.monotonic() >= deadline:
            return time.monotonic(), left
        await asyncio.sleep(0.1)


def new_sshd_lines(start: int) -> list[str]:
    with SSHD_LOG.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace").splitlines()


def accepted_on(lines: list[str], port: int) -> list[str]:
    return [line for line in lines if re.search(rf"Accepted publickey .* port {port} ", line)]


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running or file descriptors open."""
    tasks_before = asyncio.all_tasks()
    fds_before = len(os.listdir("/proc/self/fd"))
    yield
    await asyncio.sleep(0.01)
    leaked = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    leaked = [t for t in leaked if t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds_before, "leaked file descriptors"


# --- the happy path ---------------------------------------------------------------------


async def test_postqueue_j_matches_local_postqueue() -> None:
    host = lab_host(command_timeout=60.0)  # a lab queue may hold 100 000 messages
    command = RemoteCommand(argv=("/usr/sbin/postqueue", "-j"), remote_timeout=60)
    deadline = time.monotonic() + 30
    async with SSHExecutor() as ex:
        # Other users of the lab may clear, fill or flush the queue meanwhile: compare in a
        # moment when the queue is not empty and the same before and after the remote read.
        while True:
            before = local_postqueue_lines()
            result = await ex.run(host, command)
            after = local_postqueue_lines()
            if before == after > 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the lab queue did not hold still ({before} then {after} messages)")
            await asyncio.sleep(0.5)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == before
    assert all(json.loads(line)["queue_id"] for line in lines[:10])
    assert result.exit_status == 0
    assert result.stdout_bytes == len(result.stdout.encode())
    assert result.host_key_fingerprint.startswith("SHA256:")
    assert result.host_key_fingerprint == local_fingerprint(KNOWN_HOSTS)


async def test_second_command_reuses_the_connection() -> None:
    """sshd itself says which TCP connection ran each command ($SSH_CONNECTION)."""
    host = lab_host()
    start = SSHD_LOG.stat().st_size
    async with SSHExecutor() as ex:
        first = (await ex.run(host, SSH_CONNECTION)).stdout.split()
        second = (await ex.run(host, SSH_CONNECTION)).stdout.split()
    assert first == second, "the second command ran on a different connection"
    client_port = int(first[1])
    assert (first[2], first[3]) == ("127.0.0.1", "2222")
    # One login for that connection (sshd logs it before any command runs).
    assert len(accepted_on(new_sshd_lines(start), client_port)) == 1


# --- host keys --------------------------------------------------------------------------


async def test_host_key_mismatch_is_refused_before_login(tmp_path: Path) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:2222 {impostor}")
    host = lab_host(known_hosts=known_hosts)
    ran = Path(f"/tmp/mailqbot-lab-ran-{os.getpid()}")  # the lab user could create this
    ran.unlink(missing_ok=True)
    start = SSHD_LOG.stat().st_size
    async with SSHExecutor() as ex:
        started = time.monotonic()
        with pytest.raises(HostKeyMismatch) as caught:
            await ex.run(host, RemoteCommand(argv=("/usr/bin/touch", str(ran))))
        elapsed = time.monotonic() - started
    assert elapsed < host.connect_timeout + host.login_timeout + SLACK
    message = caught.value.user_message
    assert "does not match the pinned key" in message
    assert str(known_hosts) in message
    assert caught.value.host == "lab"
    # sshd saw us hang up during key exchange ([preauth]) and never logged a login for it.
    refused: list[int] = []
    for _ in range(30):
        lines = new_sshd_lines(start)
        refused = [
            int(m.group(1))
            for line in lines
            if (
                m := re.search(
                    r"disconnect from 127\.0\.0\.1 port (\d+):9: Host key .*\[preauth\]", line
                )
            )
        ]
        if refused:
            break
        await asyncio.sleep(0.1)
    assert refused, f"sshd did not log the refused connection: {lines}"
    for port in refused:
        assert not accepted_on(lines, port)
    assert not ran.exists(), "the command ran on the host"


async def test_missing_known_hosts_is_refused_without_connecting(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_known_hosts"
    async with SilentTCPServer() as server:  # would count a connection attempt
        host = lab_host(known_hosts=missing, port=server.port)
        async with SSHExecutor() as ex:
            started = time.monotonic()
            with pytest.raises(HostKeyMismatch) as caught:
                await ex.run(host, POSTQUEUE_J)
            elapsed = time.monotonic() - started
        assert server.connections_accepted == 0
    assert elapsed < 1.0
    message = caught.value.user_message
    assert str(missing) in message
    assert "does not exist" in message
    assert "ssh-keyscan" in message
    assert "add the line" in message


async def test_missing_known_hosts_against_the_real_sshd(tmp_path: Path) -> None:
    host = lab_host(known_hosts=tmp_path / "absent")
    async with SSHExecutor() as ex:
        with pytest.raises(HostKeyMismatch, match=re.escape("ssh-keyscan -p 2222 127.0.0.1")):
            await ex.run(host, POSTQUEUE_J)


# --- unreachable hosts ------------------------------------------------------------------


async def test_closed_port_is_unreachable_quickly() -> None:
    host = lab_host(port=unused_port())
    async with SSHExecutor() as ex:
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as caught:
            await ex.run(host, POSTQUEUE_J)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    message = caught.value.user_message
    assert f"127.0.0.1:{host.port}" in message
    assert "Connection refused" in message


async def test_silent_tcp_server_is_unreachable_within_the_login_limit() -> None:
    async with SilentTCPServer() as server:
        host = lab_host(port=server.port, connect_timeout=1.0, login_timeout=1.0)
        async with SSHExecutor() as ex:
            started = time.monotonic()
            with pytest.raises(HostUnreachable) as caught:
                await ex.run(host, POSTQUEUE_J)
            elapsed = time.monotonic() - started
        assert server.connections_accepted == 1
    assert elapsed < 2.0 + SLACK
    message = caught.value.user_message
    assert f"127.0.0.1:{server.port}" in message
    assert "sshd" in message


# --- hung commands ----------------------------------------------------------------------


async def test_hung_command_is_stopped_by_the_remote_timeout() -> None:
    marker = f"30.{os.getpid()}1"  # a sleep no one else runs, to find it with pgrep
    command = RemoteCommand(argv=("/bin/sleep", marker), remote_timeout=2)
    host = lab_host()
    async with SSHExecutor() as ex:
        await ex.run(host, SSH_CONNECTION)  # connect first: time only the command
        started = time.monotonic()
        with pytest.raises(CommandTimeout) as caught:
            await ex.run(host, command)
        elapsed = time.monotonic() - started
        assert (await ex.run(host, SSH_CONNECTION)).exit_status == 0  # connection still fine
    assert 1.5 < elapsed < 2 + 1.5, f"took {elapsed:.2f}s"
    message = caught.value.user_message
    assert "stopped by `timeout` after 2 s" in message
    assert "safe to retry" in message
    gone_at, left = await wait_gone(f"sleep {marker}", time.monotonic() + 3)
    assert not left, f"the remote sleep outlived its timeout: {left}"
    assert gone_at - started < 2 + SLACK


async def test_host_command_timeout_caps_the_remote_timeout() -> None:
    """The executor runs the command under min(remote_timeout, command_timeout) on the host."""
    marker = f"30.{os.getpid()}2"
    command = RemoteCommand(argv=("/bin/sleep", marker), remote_timeout=30)
    host = lab_host(command_timeout=1.5)
    async with SSHExecutor() as ex:
        await ex.run(host, SSH_CONNECTION)
        started = time.monotonic()
        with pytest.raises(CommandTimeout) as caught:
            await ex.run(host, command)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + SLACK, f"took {elapsed:.2f}s"
    assert "stopped by `timeout` after 1.5 s" in caught.value.user_message
    _, left = await wait_gone(f"sleep {marker}", time.monotonic() + 3)
    assert not left, f"the remote sleep outlived its timeout: {left}"


async def test_command_ignoring_sigterm_hits_the_local_limit_and_is_killed() -> None:
    """A command deaf to `timeout`'s SIGTERM: the local limit (remote timeout + margin) ends
    the wait, and `timeout -k 5` still kills the command on the host 5 s after its timeout."""
    marker = f"30.{os.getpid()}3"
    script = f"trap '' TERM; exec /bin/sleep {marker}"
    command = RemoteCommand(argv=("/bin/sh", "-c", script), remote_timeout=1)
    host = lab_host()
    async with SSHExecutor(timeout_margin=0.5) as ex:
        await ex.run(host, SSH_CONNECTION)
        started = time.monotonic()
        with pytest.raises(CommandTimeout) as caught:
            await ex.run(host, command)
        elapsed = time.monotonic() - started
        assert (await ex.run(host, SSH_CONNECTION)).exit_status == 0  # connection still fine
    message = caught.value.user_message
    assert "did not finish within 1.5 s; mailqbot closed the channel" in message
    assert "safe to retry" in message
    gone_at, left = await wait_gone(f"sleep {marker}", started + 1 + 5 + SLACK + 1)
    assert not left, f"the remote sleep outlived `timeout -k 5`: {left}"
    assert gone_at - started < 1 + 5 + SLACK
    # The error must reach the caller at the local limit, not when sshd confirms the close
    # (only once the command exits, here 5 s later).
    assert 1.3 < elapsed < 1.5 + SLACK, f"took {elapsed:.2f}s"


# --- sudo -------------------------------------------------------------------------------


async def test_sudo_without_a_rule_fails_immediately() -> None:
    host = lab_host()
    async with SSHExecutor() as ex:
        await ex.run(host, SSH_CONNECTION)
        started = time.monotonic()
        with pytest.raises(SudoPasswordRequired) as caught:
            await ex.run(host, RemoteCommand(argv=("/usr/bin/id",), sudo=True))
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    message = caught.value.user_message
    assert "sudo -n /usr/bin/id" in message
    assert "sudoers snippet" in message
    assert "mailqbot" in message


async def test_allowed_sudo_postcat_shows_the_message() -> None:
    """`sudo -n postcat -eh -q ID` as deploy/sudoers.mailqbot allows it."""
    host = lab_host()
    candidates = some_deferred(5)
    assert candidates, "no deferred message in the lab queue (cleared by someone meanwhile?)"
    async with SSHExecutor() as ex:
        for message in candidates:  # another lab user may delete it meanwhile: try the next
            queue_id = str(message["queue_id"])
            command = RemoteCommand(argv=("/usr/sbin/postcat", "-eh", "-q", queue_id), sudo=True)
            result = await ex.run(host, command, check=False)
            if result.exit_status == 0:
                break
        else:
            pytest.fail(f"postcat failed for every deferred message tried: {result.stderr}")
    assert "*** ENVELOPE RECORDS " in result.stdout
    assert queue_id in result.stdout
    sender = "" if message["sender"] == "MAILER-DAEMON" else message["sender"]  # null sender
    # postqueue quotes a local part that needs it ("<!channel>"@evil.test); postcat prints the
    # envelope record as stored, unquoted.
    sender = re.sub(r'^"(.*)"@', r"\1@", sender)
    assert f"\nsender: {sender}\n" in result.stdout
    assert "*** MESSAGE CONTENTS " in result.stdout


# --- authentication ---------------------------------------------------------------------


async def test_unknown_client_key_is_refused(tmp_path: Path) -> None:
    new_key(tmp_path / "id_ed25519")
    host = lab_host(private_key=tmp_path / "id_ed25519")
    async with SSHExecutor() as ex:
        started = time.monotonic()
        with pytest.raises(AuthFailed) as caught:
            await ex.run(host, POSTQUEUE_J)
        elapsed = time.monotonic() - started
    assert elapsed < host.connect_timeout + host.login_timeout + SLACK
    message = caught.value.user_message
    assert "user mailqbot" in message
    assert str(tmp_path / "id_ed25519") in message
    assert "authorized_keys" in message


async def test_wrong_user_is_refused() -> None:
    host = lab_host(user="nosuchuser")
    async with SSHExecutor() as ex:
        started = time.monotonic()
        with pytest.raises(AuthFailed, match="user nosuchuser"):
            await ex.run(host, POSTQUEUE_J)
        elapsed = time.monotonic() - started
    assert elapsed < host.connect_timeout + host.login_timeout + SLACK
