"""The one SSH executor: pinned host keys, explicit timeouts, per-host caps, reused connections.

``SSHExecutor.run`` runs a ``RemoteCommand`` and returns a frozen ``CommandResult``;
``SSHExecutor.stream`` yields standard output in chunks as it arrives (``postqueue -j`` on a
big queue) and checks the exit status at the end. Failures are ``bot.errors.SSHError``s whose
message says what to do next.

Decisions the executor makes for its callers:

- Host keys are checked against ``host.known_hosts`` only (``config=None`` so
  ``~/.ssh/config`` cannot turn checking off; no SSH agent; key login only).
- One connection per host, opened under a per-host lock and kept open; a connection found
  closed is replaced. A command is retried once on a new connection only if it cannot have
  started (the session channel was never opened) or it does not change the queue.
- At most ``host.max_sessions`` channels per host at once.
- ``sudo -n`` only where the host is configured with ``sudo = true``: on a host with
  ``sudo = false`` (it logs in as root, or its key is forced through deploy/mailqbot-wrapper,
  which gets root itself) no command line starts with ``sudo``, whatever the template asked.
- Time limits: connecting (TCP, banner, key exchange and login together) gets
  ``connect_timeout + login_timeout``. A command runs on the host under
  ``timeout min(command.remote_timeout, host.command_timeout)``; locally the channel is given
  ``timeout_margin`` seconds more, so the host normally stops the command first (exit 124).
- Memory: ``run`` keeps at most ``RUN_OUTPUT_LIMIT`` bytes of standard output (more raises
  ``OutputTooLarge``); ``stream`` keeps none. Of stderr only the last ``STDERR_LIMIT`` bytes
  are kept.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from bot.errors import (
    AuthFailed,
    CommandFailed,
    CommandTimeout,
    ConnectionLost,
    HostKeyMismatch,
    HostUnreachable,
    OutputTooLarge,
    SSHError,
    SudoPasswordRequired,
)
from bot.inventory import Host
from bot.remote.command import RemoteCommand

logger = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024  # bytes per read of a streamed stdout
MiB = 1024 * 1024
# Standard output ``run`` keeps in memory: more than any Postfix command the bot runs prints
# (postconf, postcat of a message at the default 10 MB message_size_limit); listings and
# logs are streamed. A host that sends more gets OutputTooLarge and its channel closed.
RUN_OUTPUT_LIMIT = 16 * MiB
# The last part of stderr that is kept: a container's mail log comes on stderr
# (bot.postfix.tools.read_container); postsuper's report of a 2,000-ID batch is ~100 KiB.
STDERR_LIMIT = 16 * MiB
# Unread standard output above which the channel stops reading until the reader catches up.
PAUSE_BYTES = 4 * CHUNK_SIZE
STDERR_SHOWN = 500  # characters of stderr quoted in an error message
TIMEOUT_MARGIN = 2.0  # local limit = remote `timeout` + this
CLOSE_WAIT = 1.0  # after leaving a stream early, how long to wait for the channel to close
DEAD_CHECK_WAIT = 0.5  # after a failed channel open, how long to wait for the connection to die
KEEPALIVE_INTERVAL = 30.0
KEEPALIVE_COUNT_MAX = 3
REMOTE_TIMEOUT_EXIT = 124  # coreutils `timeout`
SUDO_NEEDS_AUTH = "a password is required"
EXTENDED_DATA_STDERR = 1  # RFC 4254 5.2: the data type of stderr on a session channel


class _LazyAsyncssh:
    """Stands in for the ``asyncssh`` module until first used (importing it costs ~0.1 s
    that a command line which never opens SSH need not pay); then replaces itself."""

    def __getattr__(self, name: str) -> Any:
        import asyncssh as module

        globals()["asyncssh"] = module
        return getattr(module, name)


if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = _LazyAsyncssh()

# AES-GCM first: asyncssh's chacha20-poly1305 builds three cipher objects per packet and
# costs the bot about twice the CPU per packet; the defaults follow for hosts without GCM.
CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """``stdout`` is empty for a streamed command (the caller consumed it)."""

    host: str
    command_line: str
    exit_status: int
    stdout: str
    stderr: str
    elapsed: float
    host_key_fingerprint: str
    stdout_bytes: int = 0


@dataclass
class _Slot:
    """Per-host state: the reused connection, the session cap, the last connect attempt."""

    sessions: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: asyncssh.SSHClientConnection | None = None
    fingerprint: str = ""
    failures: int = 0
    last_failure: SSHError | None = None


class SSHExecutor:
    """Runs ``RemoteCommand``s on inventory hosts; ``async with SSHExecutor() as ex: ...``."""

    def __init__(self, *, timeout_margin: float = TIMEOUT_MARGIN) -> None:
        self._slots: dict[Host, _Slot] = {}
        self._margin = timeout_margin
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(
        self,
        host: Host,
        command: RemoteCommand,
        *,
        stdin: bytes | None = None,
        check: bool = True,
        max_output: int = RUN_OUTPUT_LIMIT,
    ) -> CommandResult:
        """Run ``command`` and collect its output (decoded as UTF-8, bad bytes replaced).

        ``check=False`` returns non-zero exits as results instead of raising; a lost
        connection or the local time limit always raises. More than ``max_output`` bytes
        of standard output raises ``OutputTooLarge`` (the channel is closed at once).
        """
        async with self.stream(host, command, stdin=stdin, check=check) as out:
            chunks, size = [], 0
            async for chunk in out:
                size += len(chunk)
                if size > max_output:
                    raise OutputTooLarge(host.name, _too_large(host, command, max_output), -1, "")
                chunks.append(chunk)
        assert out.result is not None
        stdout = b"".join(chunks).decode("utf-8", errors="replace")
        return dataclasses.replace(out.result, stdout=stdout)

    def stream(
        self, host: Host, command: RemoteCommand, *, stdin: bytes | None = None, check: bool = True
    ) -> AbstractAsyncContextManager[RemoteStream]:
        """``async with ex.stream(host, cmd) as out: async for chunk in out: ...``

        Exhausting ``out`` checks the exit status (raising like ``run``) and sets
        ``out.result``; leaving the block early closes the channel.
        """
        return self._stream(host, command, stdin, check)

    async def close(self) -> None:
        """Close every connection; the executor cannot be used afterwards."""
        self._closed = True
        conns = [slot.conn for slot in self._slots.values() if slot.conn is not None]
        self._slots.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    @contextlib.asynccontextmanager
    async def _stream(
        self, host: Host, command: RemoteCommand, stdin: bytes | None, check: bool
    ) -> AsyncIterator[RemoteStream]:
        slot = self._slot(host)
        sent = dataclasses.replace(
            command,
            remote_timeout=min(command.remote_timeout, host.command_timeout),
            sudo=command.sudo and host.sudo,  # a host configured without sudo never gets it
        )
        async with slot.sessions:
            limit = sent.remote_timeout + self._margin
            started = asyncio.get_running_loop().time()
            channel, session, fingerprint = await self._start(
                host, slot, sent, started + limit, limit
            )
            out = RemoteStream(host, sent, channel, session, fingerprint, started, limit, check)
            try:
                out.send_stdin(stdin)
                yield out
            finally:
                await out.aclose()

    def _slot(self, host: Host) -> _Slot:
        if self._closed:
            raise RuntimeError("SSHExecutor is closed")
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = _Slot(asyncio.Semaphore(host.max_sessions))
        return slot

    async def _start(
        self, host: Host, slot: _Slot, command: RemoteCommand, deadline: float, limit: float
    ) -> tuple[asyncssh.SSHClientChannel[bytes], _Session, str]:
        """Open the session channel and exec; retry once on a new connection if safe."""
        for attempt in (1, 2):
            conn, fingerprint = await self._connection(host, slot)
            try:
                async with asyncio.timeout_at(deadline):
                    channel, session = await conn.create_session(
                        cast("Callable[[], asyncssh.SSHClientSession[bytes]]", _Session),
                        command.command_line(),
                        encoding=None,
                    )
            except TimeoutError:
                raise CommandTimeout(
                    host.name, _local_timeout_message(host, command, limit)
                ) from None
            except (asyncssh.Error, OSError) as exc:  # link errors
                if attempt == 2 or not _may_retry(command, exc) or not await _dead(conn):
                    raise _start_error(host, command, exc) from exc
                logger.info("connection to %s was closed (%s); reconnecting", host.name, exc)
                continue
            return channel, cast(_Session, session), fingerprint
        raise AssertionError("unreachable")

    async def _connection(
        self, host: Host, slot: _Slot
    ) -> tuple[asyncssh.SSHClientConnection, str]:
        """The host's open connection, opened by one caller at a time.

        Callers that queued behind a failed attempt get its error instead of each waiting
        out the timeouts again.
        """
        failures_before = slot.failures
        async with slot.lock:
            if slot.conn is not None and not slot.conn.is_closed():
                return slot.conn, slot.fingerprint
            if self._closed:
                raise RuntimeError("SSHExecutor is closed")
            if slot.failures != failures_before and slot.last_failure is not None:
                raise type(slot.last_failure)(host.name, slot.last_failure.user_message)
            try:
                slot.conn = await _connect(host)
            except SSHError as exc:
                slot.failures += 1
                slot.last_failure = exc
                raise
            server_key = slot.conn.get_server_host_key()
            slot.fingerprint = server_key.get_fingerprint() if server_key else ""
            logger.info("connected to %s, host key %s", _where(host), slot.fingerprint)
            return slot.conn, slot.fingerprint


class _Session:
    """What arrives on one session channel, kept until the stream's reader takes it.

    A plain session instead of asyncssh's process streams: every host's listing of a fleet
    read passes here, and the streams' per-read machinery, a stderr reader task and a timer
    per read cost ~0.1 ms of the bot's CPU per host (``bench_fleet.py --floor``: 0.52 ->
    0.42 ms per host for a bytes-only read; a bare asyncssh session costs 0.35).

    Standard output is queued in the packets' own chunks; above ``PAUSE_BYTES`` unread, the
    channel stops reading (and so the sender, through the SSH window) until the reader has
    taken it. Of stderr only the last ``STDERR_LIMIT`` bytes are kept. It has every method of
    ``asyncssh.SSHClientSession`` without subclassing it, so that importing this module
    does not import asyncssh.
    """

    def __init__(self) -> None:
        self.stdout: collections.deque[bytes] = collections.deque()
        self.unread = 0
        self.stderr = bytearray()
        self.stderr_dropped = 0
        self.eof = False
        self.closed = False
        self.error: Exception | None = None  # the connection was lost
        self.paused = False
        self.channel: asyncssh.SSHClientChannel[bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.channel = chan

    def session_started(self) -> None:
        pass

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype == EXTENDED_DATA_STDERR:
            self.stderr += data
            if len(self.stderr) > STDERR_LIMIT:
                cut = len(self.stderr) - STDERR_LIMIT
                self.stderr_dropped += cut
                del self.stderr[:cut]
            return
        self.stdout.append(data)
        self.unread += len(data)
        if self.unread > PAUSE_BYTES and not self.paused and self.channel is not None:
            self.paused = True
            self.channel.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # as asyncssh's own streams: our side's EOF went with stdin already

    def pause_writing(self) -> None:
        pass  # stdin is written at once (a few IDs or nothing), never awaited

    def resume_writing(self) -> None:
        pass

    def xon_xoff_requested(self, client_can_do: bool) -> None:
        pass

    def exit_status_received(self, status: int) -> None:
        pass  # read from the channel at the end

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def take(self) -> bytes:
        """Up to ``CHUNK_SIZE`` bytes of what arrived (at least one packet's worth)."""
        stdout = self.stdout
        chunk = stdout.popleft()
        if stdout and len(chunk) < CHUNK_SIZE:
            parts, size = [chunk], len(chunk)
            while stdout and size + len(stdout[0]) <= CHUNK_SIZE:
                size += len(stdout[0])
                parts.append(stdout.popleft())
            chunk = b"".join(parts)
        self.unread -= len(chunk)
        if self.paused and self.unread <= PAUSE_BYTES // 2 and self.channel is not None:
            self.paused = False
            self.channel.resume_reading()
        return chunk

    def stderr_text(self) -> str:
        head = (
            f"[first {self.stderr_dropped} bytes of stderr dropped]\n"
            if self.stderr_dropped
            else ""
        )
        return head + self.stderr.decode("utf-8", errors="replace")

    async def changed(self) -> None:
        """Wait until more arrives, or the channel reaches its end or is lost."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def fail(self, exc: Exception) -> None:
        """Wake the reader with ``exc`` (the local time limit passed)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class RemoteStream:
    """Standard output of a running command, in chunks of up to ``CHUNK_SIZE`` bytes.

    Stderr is collected alongside it (its last ``STDERR_LIMIT`` bytes are kept). ``result``
    is set once the stream is exhausted (before the exit status is checked, so it is there
    even when the check raises). One timer holds the local time limit: when it passes, the
    channel is closed and the read waiting (or the next one) raises ``CommandTimeout``.
    """

    def __init__(
        self,
        host: Host,
        command: RemoteCommand,
        channel: asyncssh.SSHClientChannel[bytes],
        session: _Session,
        fingerprint: str,
        started: float,
        limit: float,
        check: bool,
    ) -> None:
        self.host = host
        self.command = command
        self.result: CommandResult | None = None
        self.bytes_received = 0
        self._channel = channel
        self._session = session
        self._fingerprint = fingerprint
        self._started = started
        self._limit = limit
        self._check = check
        self._done = False
        self._timed_out = False
        self._timer = asyncio.get_running_loop().call_at(started + limit, self._expire)

    def send_stdin(self, data: bytes | None) -> None:
        """Queue ``data`` (never logged) and end stdin, so the command never waits on it."""
        try:
            if data:
                self._channel.write(data)
            self._channel.write_eof()
        except (asyncssh.Error, OSError) as exc:  # link errors
            self._done = True
            raise _lost(self.host, self.command, exc) from exc

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        session = self._session
        while not session.stdout:
            if session.eof or session.closed:
                self._done = True
                await self._finish()
                raise StopAsyncIteration
            await self._wait()
        chunk = session.take()
        self.bytes_received += len(chunk)
        return chunk

    async def aclose(self) -> None:
        """Close the channel if the command is still running, and stop the timer.

        After leaving early, wait briefly for the close (a command writing output dies of
        SIGPIPE at once); after a timeout, do not wait: sshd confirms the close only when the
        command exits, which the remote ``timeout -k`` enforces. A stream read to its end has
        seen the close already.
        """
        self._timer.cancel()
        if not self._done:
            self._done = True
            logger.info("closing %s on %s before it finished", self.command.argv[0], self.host.name)
            self._channel.close()
        if self._timed_out or self._session.closed:
            return
        try:
            await asyncio.wait_for(self._channel.wait_closed(), CLOSE_WAIT)
        except TimeoutError:
            logger.info("channel on %s still closing after %ss", self.host.name, CLOSE_WAIT)

    def _expire(self) -> None:
        """The local time limit passed: close the channel and fail the waiting read."""
        self._timed_out = True
        self._channel.close()
        self._session.fail(self._timeout())

    def _timeout(self) -> CommandTimeout:
        self._done = True
        return CommandTimeout(
            self.host.name, _local_timeout_message(self.host, self.command, self._limit)
        )

    async def _wait(self) -> None:
        """Wait for the session to change; the time limit and a lost link raise."""
        if self._timed_out:
            raise self._timeout()
        await self._session.changed()
        if self._timed_out:
            raise self._timeout()
        error = self._session.error
        if error is not None:
            self._done = True
            raise _lost(self.host, self.command, error) from error

    async def _finish(self) -> None:
        """Wait for the exit status, set ``result``, then check it (raising on failure)."""
        session = self._session
        while not session.closed:
            await self._wait()
        if self._timed_out:
            raise self._timeout()
        if session.error is not None:
            raise _lost(self.host, self.command, session.error) from session.error
        self._timer.cancel()
        status = self._channel.get_returncode()
        if status is None:
            raise _lost(self.host, self.command, "the channel closed without an exit status")
        result = CommandResult(
            host=self.host.name,
            command_line=self.command.command_line(),
            exit_status=status,
            stdout="",
            stderr=session.stderr_text(),
            elapsed=asyncio.get_running_loop().time() - self._started,
            host_key_fingerprint=self._fingerprint,
            stdout_bytes=self.bytes_received,
        )
        self.result = result
        logger.info(
            "%s on %s exited %d in %.2fs (%d bytes out)",
            self.command.argv[0], self.host.name, status, result.elapsed, self.bytes_received,
        )  # fmt: skip
        if self._check:
            _check_exit(self.host, self.command, result)


# --- connecting -------------------------------------------------------------------------


async def _connect(host: Host) -> asyncssh.SSHClientConnection:
    known_hosts = _read_known_hosts(host)
    client_keys = _client_keys(host)
    limit = host.connect_timeout + host.login_timeout
    try:
        return await asyncio.wait_for(_open(host, known_hosts, client_keys), limit)
    except TimeoutError:
        raise HostUnreachable(
            host.name,
            f"cannot reach {_where(host)}: no SSH handshake within {limit:g} s. Check that the "
            "host is up, that sshd (not another service) listens on that port, and that no "
            "firewall drops the traffic.",
        ) from None
    except asyncssh.HostKeyNotVerifiable:
        raise _key_refused(host, known_hosts) from None
    except asyncssh.PermissionDenied:
        raise AuthFailed(host.name, _auth_message(host)) from None
    except asyncssh.DisconnectError as exc:
        raise HostUnreachable(host.name, _handshake_message(host, exc)) from None
    except OSError as exc:
        raise HostUnreachable(host.name, _os_error_message(host, exc)) from None


async def _open(
    host: Host, known_hosts: asyncssh.SSHKnownHosts, client_keys: list[asyncssh.SSHKey]
) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        host.address,
        host.port,
        config=None,
        known_hosts=known_hosts,
        username=host.user,
        client_keys=client_keys or (),
        agent_path=None,
        password_auth=False,
        kbdint_auth=False,
        gss_auth=False,
        host_based_auth=False,
        login_timeout=host.login_timeout,
        keepalive_interval=KEEPALIVE_INTERVAL,
        keepalive_count_max=KEEPALIVE_COUNT_MAX,
        encryption_algs=CIPHERS,
    )


# Parsed known_hosts files by path, with the text they were parsed from: one file pins many
# hosts, and parsing it for every connect made connecting N hosts cost N². Reading and
# comparing the text is cheap and, unlike a modification time, never misses an edit.
_known_hosts_cache: dict[str, tuple[str, asyncssh.SSHKnownHosts]] = {}


def _read_known_hosts(host: Host) -> asyncssh.SSHKnownHosts:
    """The parsed file as it is on disk now (parsed again only when its text changed)."""
    path = host.known_hosts
    scan = f"`ssh-keyscan -p {host.port} {host.address}`"
    try:
        text = Path(path).read_text(encoding="utf-8")
        cached = _known_hosts_cache.get(str(path))
        if cached is not None and cached[0] == text:
            return cached[1]
        parsed = asyncssh.import_known_hosts(text)
        _known_hosts_cache[str(path)] = (text, parsed)
        return parsed
    except FileNotFoundError:
        problem = f"the known_hosts file {path} for {host.name} does not exist"
    except (OSError, ValueError) as exc:
        problem = f"the known_hosts file {path} for {host.name} cannot be used ({exc})"
    raise HostKeyMismatch(
        host.name,
        f"Refusing to connect: {problem}, and host keys are always verified. Run {scan}, "
        f"verify the fingerprint out of band (on the host: `ssh-keygen -lf "
        f"/etc/ssh/ssh_host_ed25519_key.pub`), then add the line to {path}.",
    )


def _key_refused(host: Host, known_hosts: asyncssh.SSHKnownHosts) -> HostKeyMismatch:
    path = host.known_hosts
    pinned = known_hosts.match(host.address, host.address, host.port)[0]
    if not pinned:
        return HostKeyMismatch(
            host.name,
            f"Refusing to connect: no host key for {_where(host)} is pinned in {path}. Run "
            f"`ssh-keyscan -p {host.port} {host.address}`, verify the fingerprint out of band, "
            f"and add the line to {path}.",
        )
    logger.error("host key for %s does not match the key pinned in %s", _where(host), path)
    return HostKeyMismatch(
        host.name,
        f"Refusing to connect: the host key for {host.name} does not match the pinned key in "
        f"{path}. If the host was rebuilt, verify the new key out of band and update {path}; "
        "otherwise treat this as a possible attack.",
    )


def _client_keys(host: Host) -> list[asyncssh.SSHKey]:
    if host.private_key is None:
        return []
    try:
        return [asyncssh.read_private_key(str(host.private_key))]
    except OSError as exc:
        problem = f"cannot read the private key {host.private_key}: {exc.strerror}"
    except (asyncssh.KeyImportError, ValueError) as exc:
        problem = f"{host.private_key} is not a usable private key ({exc})"
    raise AuthFailed(
        host.name,
        f"{problem}. Check ssh.private_key in the config and the file's permissions "
        "(passphrase-protected keys are not supported).",
    )


# --- failures and their messages -------------------------------------------------------


def _check_exit(host: Host, command: RemoteCommand, result: CommandResult) -> None:
    status, stderr = result.exit_status, result.stderr
    if status == 0:
        return
    if status == REMOTE_TIMEOUT_EXIT:
        raise CommandTimeout(host.name, _remote_timeout_message(host, command))
    if status == 1 and SUDO_NEEDS_AUTH in stderr:
        raise SudoPasswordRequired(
            host.name,
            f"sudo on {host.name} asked for a password for `{command.display()}`: the sudoers "
            f"rule for {host.user} is missing or does not match this command. Install "
            "mailqbot's sudoers snippet on the host (deploy/sudoers.mailqbot, or "
            "deploy/sudoers.mailqbot-wrapper where the key is forced through mailqbot-wrapper; "
            "check it with `visudo -cf`) and retry.",
        )
    raise CommandFailed(host.name, _failed_message(host, command, status, stderr), status, stderr)


def _failed_message(host: Host, command: RemoteCommand, status: int, stderr: str) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    shown = stderr.strip()[-STDERR_SHOWN:] or "(no error output)"
    return (
        f"`{command.display()}` on {host.name} {how}: {shown}\n"
        f"To investigate, run the command on the host as {host.user}."
    )


def _outcome(command: RemoteCommand) -> str:
    if command.changes_queue:
        return (
            " It changes the queue and may have partly run: outcome unknown. Check the host "
            "(list the queue again) before retrying; mailqbot will not retry it."
        )
    return " It only reads, so it is safe to retry."


def _local_timeout_message(host: Host, command: RemoteCommand, limit: float) -> str:
    return (
        f"`{command.display()}` on {host.name} did not finish within {limit:g} s; mailqbot "
        f"closed the channel.{_outcome(command)} If it keeps happening, check the host's load."
    )


def _remote_timeout_message(host: Host, command: RemoteCommand) -> str:
    return (
        f"`{command.display()}` on {host.name} was stopped by `timeout` after "
        f"{command.remote_timeout:g} s.{_outcome(command)} If it keeps happening, check the "
        "host's load or raise command_timeout."
    )


def _too_large(host: Host, command: RemoteCommand, limit: int) -> str:
    return (
        f"`{command.display()}` on {host.name} printed more than {limit / MiB:g} MiB; mailqbot "
        f"keeps at most that much of a command's output, so it stopped reading and closed the "
        f"channel.{_outcome(command)} No Postfix command mailqbot runs prints that much: check "
        f"what `{command.argv[0]}` is on {host.name}."
    )


def _lost(host: Host, command: RemoteCommand, why: object) -> ConnectionLost:
    message = (
        f"The connection to {host.name} was lost while `{command.display()}` ran ({why}); its "
        f"output is incomplete.{_outcome(command)}"
    )
    return ConnectionLost(host.name, message, -1, "")


def _start_error(host: Host, command: RemoteCommand, exc: BaseException) -> SSHError:
    if isinstance(exc, asyncssh.ChannelOpenError):
        return HostUnreachable(
            host.name,
            f"{host.name} refused to open an SSH session ({exc.reason}). Check MaxSessions in "
            f"its sshd_config (mailqbot opens up to {host.max_sessions}) and retry.",
        )
    return _lost(host, command, exc)


def _auth_message(host: Host) -> str:
    key = host.private_key or "the default keys in ~/.ssh"
    return (
        f"{_where(host)} refused key login for user {host.user} with {key}. Check that the "
        f"public key is in ~{host.user}/.ssh/authorized_keys on the host and that any "
        "from= restriction allows this machine."
    )


def _os_error_message(host: Host, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot resolve {host.address}, the address of {host.name}: {exc.strerror}. Check "
            "the address in the config and DNS."
        )
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc)
    return (
        f"cannot reach {_where(host)}: {reason or type(exc).__name__}. Check the address/port "
        "in the config and that sshd runs."
    )


def _handshake_message(host: Host, exc: asyncssh.DisconnectError) -> str:
    if "timeout" in exc.reason.lower():  # asyncssh's login timer: no banner or login in time
        problem = f"no SSH login within {host.login_timeout:g} s ({exc.reason})"
    else:
        problem = f"the SSH handshake failed ({exc.reason})"
    return (
        f"cannot reach {_where(host)}: {problem}. Check that the host is up and that sshd (not "
        "another service) listens on that port and is not overloaded (load, MaxStartups)."
    )


def _where(host: Host) -> str:
    return f"{host.name} ({host.address}:{host.port})"


def _may_retry(command: RemoteCommand, exc: BaseException) -> bool:
    """Safe to resend: the session channel never opened (so nothing ran), or it only reads.

    A failed *exec request* (``OPEN_REQUEST_SESSION_FAILED``) comes after the command was sent,
    so it does not count as "never opened".
    """
    never_opened = (
        isinstance(exc, asyncssh.ChannelOpenError)
        and exc.code != asyncssh.OPEN_REQUEST_SESSION_FAILED
    )
    return never_opened or not command.changes_queue


async def _dead(conn: asyncssh.SSHClientConnection) -> bool:
    """Whether ``conn`` is closed or closing (give a dying connection a moment to finish)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(conn.wait_closed(), DEAD_CHECK_WAIT)
    return conn.is_closed()
