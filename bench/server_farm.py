#!/usr/bin/env python3
"""A farm of in-process SSH servers standing in for Postfix hosts, in a process of its own.

    .venv/bin/python bench/server_farm.py DIR COUNT [--messages N] [--delay-ms MS]
                                          [--listing FILE] [--chunk BYTES]

Starts COUNT ``bot.demo.ssh.ScriptedSSHServer``s on 127.0.0.1, each answering ``postconf``
and ``postqueue -j`` from its own small queue (``bot.demo.demo_queue``: realistic reasons,
senders and ages), after waiting ``--delay-ms`` (how long the command takes on a real host,
network included); with ``--listing FILE`` every host answers ``postqueue -j`` with that
file instead (``bench_cpu.py --ssh``: a large queue over SSH without the lab), written in
pieces of ``--chunk`` bytes if given (the lab's sshd forwards ~5.6 KiB at a time).

It reads the client's public key from ``DIR/id_ed25519.pub``, writes ``DIR/mailqbot.toml``
(hosts ``h000``..., group ``farm``) and ``DIR/known_hosts``, prints ``READY`` on stdout,
and serves until stdin closes (so it never outlives its parent).

Run in its own process so the servers' CPU (key exchange, encryption, sending) is not
charged to the bot being measured: on a 2-core machine the farm gets one core, the bot the
other.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.demo import SIZES, demo_queue  # noqa: E402
from bot.demo.ssh import ScriptedSSHServer, Stdout  # noqa: E402

PROFILES = sorted(SIZES)
POSTCONF = b"3.7.11\n5d\n5d\n/var/spool/postfix\n"


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """``data`` in writes of ``size`` bytes, one SSH packet each, as sshd forwards a pipe."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def handler(name: str, lines: list[bytes], delay: float, chunk: int = 0):  # type: ignore[no-untyped-def]
    listing = b"".join(lines)

    async def handle(command_line: str, _stdin: bytes) -> tuple[int, Stdout, bytes]:
        if "/usr/sbin/postconf" in command_line:
            return 0, POSTCONF, b""
        if command_line.endswith("/usr/sbin/postqueue -j"):
            if delay:
                await asyncio.sleep(delay)
            return 0, pieces(listing, chunk) if chunk else listing, b""
        return 1, b"", f"{name}: not simulated\n".encode()

    return handle


def config(directory: Path, servers: list[ScriptedSSHServer]) -> str:
    hosts = "".join(
        f'[[hosts]]\nname = "h{n:03}"\naddress = "{s.address}"\nport = {s.port}\n'
        f'groups = ["farm", "{"one" if n == 0 else "rest"}"]\n\n'
        for n, s in enumerate(servers)
    )
    return (
        f'[ssh]\nuser = "bench"\nprivate_key = "{directory / "id_ed25519"}"\n'
        f'known_hosts = "{directory / "known_hosts"}"\nsudo = false\n\n{hosts}'
    )


async def serve(
    directory: Path, count: int, messages: int, delay: float, listing: Path | None, chunk: int
) -> None:
    public_key = directory / "id_ed25519.pub"
    now = time.time()
    async with AsyncExitStack() as stack:
        servers = []
        for n in range(count):
            profile = PROFILES[n % len(PROFILES)]
            lines = [listing.read_bytes()] if listing else demo_queue(profile, messages, now, n)
            server = ScriptedSSHServer(handler(f"h{n:03}", lines, delay, chunk), public_key)
            servers.append(await stack.enter_async_context(server))
        known = "".join(s.known_hosts_line() for s in servers)
        (directory / "known_hosts").write_text(known, encoding="ascii")
        (directory / "mailqbot.toml").write_text(config(directory, servers), encoding="utf-8")
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--listing", type=Path)
    parser.add_argument("--chunk", type=int, default=0, help="send the listing in such writes")
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    listing, chunk = args.listing, args.chunk
    asyncio.run(serve(args.directory, args.count, args.messages, delay, listing, chunk))


if __name__ == "__main__":
    main()
