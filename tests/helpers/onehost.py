"""One scripted SSH host (a real in-process server answering through ``handler``) and its
entry in an inventory: ``async with one_host(tmp_path, handler) as (host, server)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key
from bot.inventory import Host, Inventory, parse_config

Answer = tuple[int, Stdout, bytes]


@asynccontextmanager
async def one_host(
    tmp_path: Path, handler: Callable[[str, bytes], Awaitable[Answer]]
) -> AsyncIterator[tuple[Host, ScriptedSSHServer]]:
    key = generate_client_key(tmp_path)
    async with ScriptedSSHServer(handler, key.public_key) as server:
        known = server.write_known_hosts(tmp_path / "known_hosts")
        config = (
            f'[ssh]\nuser = "t"\nprivate_key = "{key.private_key}"\nknown_hosts = "{known}"\n'
            f'sudo = true\n\n[[hosts]]\nname = "mx1"\naddress = "{server.address}"\n'
            f"port = {server.port}\n"
        )
        yield Inventory(parse_config(config)).get("mx1"), server
