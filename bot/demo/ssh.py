"""An in-process SSH server whose answer to each command is scripted in Python.

The tests (``tests/remote/``) and ``mailqbot console --demo`` use it as a stand-in host: a real
asyncssh server on 127.0.0.1 with a fresh ed25519 host key that accepts exactly one client
public key. Every exec'd command line goes to an async handler::

    async def handler(command_line: str, stdin: bytes) -> Reply: ...

which returns ``(exit_status, stdout, stderr)``; ``stdin`` is read to EOF first. ``stdout`` may
be ``bytes`` or an async iterable of ``bytes`` chunks, sent with flow control as they are
produced. If the client closes the channel, the handler (or the stdout producer) is cancelled;
a handler that raises answers exit status 255. ``SilentTCPServer`` accepts TCP connections and
never says a word, like a host whose sshd is wedged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import asyncssh

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
Stdout = bytes | AsyncIterable[bytes]


class Reply(NamedTuple):
    exit_status: int
    stdout: Stdout = b""
    stderr: bytes = b""


Handler = Callable[[str, bytes], Awaitable[tuple[int, Stdout, bytes]]]


def static_handler(exit_status: int = 0, stdout: bytes = b"", stderr: bytes = b"") -> Handler:
    """A handler that answers every command the same way."""

    async def handler(command_line: str, stdin: bytes) -> Reply:
        return Reply(exit_status, stdout, stderr)

    return handler


@dataclass(frozen=True, slots=True)
class ClientKey:
    private_key: Path
    public_key: Path


def generate_client_key(directory: Path, name: str = "id_ed25519") -> ClientKey:
    """Write a new ed25519 key pair as ``directory/name`` (mode 0600) and ``name.pub``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="mailqbot-demo")
    private, public = directory / name, directory / f"{name}.pub"
    private.touch(mode=0o600)
    key.write_private_key(str(private))
    key.write_public_key(str(public))
    return ClientKey(private, public)


class _ConnectionTracker(asyncssh.SSHServer):
    def __init__(self, owner: ScriptedSSHServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connection_made(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connection_lost(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return False


class ScriptedSSHServer:
    """``async with ScriptedSSHServer(handler, client_pub) as server:`` then connect to
    ``server.address:server.port`` with the matching private key and ``server.write_known_hosts``.
    """

    def __init__(
        self,
        handler: Handler,
        client_public_key: Path | asyncssh.SSHKey,
        *,
        address: str = LOCALHOST,
    ) -> None:
        self.address = address
        self.port = 0
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.connections_accepted = 0
        self.commands: list[str] = []
        self._handler = handler
        self._client_key = _public_key(client_public_key)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        authorized = asyncssh.import_authorized_keys(
            self._client_key.export_public_key().decode("ascii")
        )
        self._acceptor = await asyncssh.listen(
            self.address,
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            server_factory=lambda: _ConnectionTracker(self),
            process_factory=self._serve,
            encoding=None,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            keepalive_interval=0,
        )
        self.port = self._acceptor.get_port()
        logger.debug("scripted SSH server listening on %s:%d", self.address, self.port)

    async def close(self) -> None:
        """Stop listening, cancel running handlers and close every connection."""
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close_idle()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def disconnect_all(self) -> None:
        """Drop every open connection without a goodbye, as a crashing host would."""
        for conn in list(self._connections):
            conn.abort()

    async def close_idle(self) -> None:
        """Close every connection cleanly, as sshd does with an idle client (ClientAlive...)."""
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()

    def known_hosts_line(self) -> str:
        key = self.host_key.export_public_key().decode("ascii").split()
        return f"[{self.address}]:{self.port} {key[0]} {key[1]}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.known_hosts_line(), encoding="ascii")
        return path

    def host_key_fingerprint(self) -> str:
        return self.host_key.get_fingerprint()

    def _connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connections_accepted += 1
        self._connections.add(conn)

    def _connection_lost(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.discard(conn)

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run the handler for one channel; cancel it if the client closes the channel."""
        answer = asyncio.ensure_future(self._answer(process))
        closed = asyncio.ensure_future(process.wait_closed())
        pair = {answer, closed}
        self._tasks |= pair
        try:
            await asyncio.wait(pair, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pair:
                task.cancel()
            await asyncio.gather(*pair, return_exceptions=True)
            self._tasks -= pair

    async def _answer(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or ""
        self.commands.append(command)
        stdin = await process.stdin.read()
        try:
            status, stdout, stderr = await self._handler(command, stdin)
        except Exception:
            logger.exception("scripted handler failed for %r", command)
            status, stdout, stderr = 255, b"", b"scripted handler failed (see the log)\n"
        try:
            await _send(process.stdout, stdout)
            process.stderr.write(stderr)
            process.exit(status)
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            logger.debug("client went away while %r was answering", command)


async def _send(writer: asyncssh.SSHWriter[bytes], stdout: Stdout) -> None:
    if isinstance(stdout, bytes):
        writer.write(stdout)
        await writer.drain()
        return
    try:
        async for chunk in stdout:
            writer.write(chunk)
            await writer.drain()
    finally:
        if isinstance(stdout, AsyncGenerator):
            await stdout.aclose()  # run the producer's cleanup now, not at garbage collection


def _public_key(key: Path | asyncssh.SSHKey) -> asyncssh.SSHKey:
    if isinstance(key, Path):
        return asyncssh.read_public_key(str(key))
    return key.convert_to_public()


class SilentTCPServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (no SSH banner)."""

    def __init__(self) -> None:
        self.address = LOCALHOST
        self.port = 0
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._hold, self.address, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        self._writers.append(writer)


def unused_port(address: str = LOCALHOST) -> int:
    """A port nothing listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
    return port


__all__ = [
    "ClientKey",
    "Handler",
    "Reply",
    "ScriptedSSHServer",
    "SilentTCPServer",
    "Stdout",
    "generate_client_key",
    "static_handler",
    "unused_port",
]
