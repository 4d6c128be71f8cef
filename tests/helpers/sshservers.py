"""Fixtures for tests over SSH: in-process scripted SSH servers, hosts pointing at them, an
executor, and a check that a test leaves no task running and no file descriptor open.

A pytest plugin (tests/conftest.py names it in ``pytest_plugins``): any test may ask for
these fixtures; the tests of tests/remote/ all run with ``no_leaks``."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.demo.ssh import ClientKey, Handler, ScriptedSSHServer, generate_client_key
from bot.inventory import Host
from bot.remote.ssh import SSHExecutor

MakeServer = Callable[[Handler], Awaitable[ScriptedSSHServer]]


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return generate_client_key(tmp_path_factory.mktemp("keys"))


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running or file descriptors open."""
    tasks_before = asyncio.all_tasks()
    fds_before = _fd_count()
    yield
    await asyncio.sleep(0.01)
    leaked = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    leaked = [t for t in leaked if t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"
    gc.collect()
    assert _fd_count() <= fds_before, "leaked file descriptors"


@pytest.fixture
async def make_server(client_key: ClientKey) -> AsyncIterator[MakeServer]:
    servers: list[ScriptedSSHServer] = []

    async def make(handler: Handler) -> ScriptedSSHServer:
        server = ScriptedSSHServer(handler, client_key.public_key)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def executor() -> AsyncIterator[SSHExecutor]:
    async with SSHExecutor(timeout_margin=0.5) as ex:
        yield ex


@pytest.fixture
def host_for(tmp_path: Path, client_key: ClientKey) -> Callable[..., Host]:
    """``host_for(server, **overrides)``: a Host pointing at ``server`` with its key pinned."""

    def make(server: Any = None, **overrides: Any) -> Host:
        known_hosts = tmp_path / "known_hosts"
        if isinstance(server, ScriptedSSHServer):
            server.write_known_hosts(known_hosts)
        fields: dict[str, Any] = {
            "name": "mx1",
            "address": "127.0.0.1",
            "port": server.port if server is not None else 22,
            "user": "mailqbot",
            "private_key": client_key.private_key,
            "known_hosts": known_hosts,
            "sudo": True,
            "groups": (),
            "connect_timeout": 2.0,
            "login_timeout": 2.0,
            "command_timeout": 10.0,
            "max_sessions": 4,
        }
        fields.update(overrides)
        return Host(**fields)

    return make
