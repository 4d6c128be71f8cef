"""Simulated Postfix hosts for the monitor tests: real in-process SSH servers whose deferred
queue size the test sets (``farm.deferred["h00"] = 120``), answering ``postconf`` and
``postqueue -j`` as Postfix does, with real delay-reason texts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key

POSTCONF = b"3.7.11\n5d\n5d\n/var/spool/postfix\n"
RELAY_AUTH = (
    "SASL authentication failed; server relay.example.test[127.0.0.9] said: 535 5.7.8 Error: "
    "authentication failed: authentication failure"
)
REASONS = [
    "connect to mx.refused.test[127.0.0.3]:25: Connection refused",
    "host mx.greylist.test[127.0.0.2] said: 450 4.7.1 <a@greylist.test>: Recipient address "
    "rejected: Greylisted (in reply to RCPT TO command)",
]


def listing(host: str, count: int, now: float, relay_failing: int = 0) -> bytes:
    """``count`` deferred messages (two thirds "connection refused", a third greylisted),
    plus ``relay_failing`` the relay refused for a failed SASL login."""
    lines = []
    for n in range(count + relay_failing):
        reason = REASONS[0] if n % 3 else REASONS[1]
        if n >= count:
            reason = RELAY_AUTH
        record = {
            "queue_name": "deferred",
            "queue_id": f"{abs(hash((host, n))) % 16**10:010X}",
            "arrival_time": int(now) - 60 * (n % 50),
            "message_size": 2048,
            "forced_expire": False,
            "sender": "billing@shop.test",
            "recipients": [{"address": f"u{n}@refused.test", "delay_reason": reason}],
        }
        lines.append(orjson.dumps(record) + b"\n")
    return b"".join(lines)


@dataclass
class Farm:
    directory: Path
    servers: dict[str, ScriptedSSHServer] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    relay_failing: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # polls answered "down", per host
    polls: dict[str, list[float]] = field(default_factory=dict)

    def handler(self, name: str):  # type: ignore[no-untyped-def]
        async def handle(command_line: str, _stdin: bytes) -> tuple[int, Stdout, bytes]:
            if name in self.down:
                self.refused[name] = self.refused.get(name, 0) + 1
                return 1, b"", b"postqueue: fatal: Queue report unavailable - mail system is down\n"
            if "/usr/sbin/postconf" in command_line:
                return 0, POSTCONF, b""
            if command_line.endswith("/usr/sbin/postqueue -j"):
                self.polls.setdefault(name, []).append(time.time())
                failing = self.relay_failing.get(name, 0)
                return 0, listing(name, self.deferred.get(name, 0), time.time(), failing), b""
            return 1, b"", b"not simulated\n"

        return handle

    def config(self, monitor: str, alert_channel: str = "C0ALERTS") -> str:
        hosts = "".join(
            f'[[hosts]]\nname = "{n}"\naddress = "{s.address}"\nport = {s.port}\n'
            f'groups = ["sim"]\n\n'
            for n, s in self.servers.items()
        )
        return (
            f'[ssh]\nuser = "sim"\nprivate_key = "{self.directory / "id_ed25519"}"\n'
            f'known_hosts = "{self.directory / "known_hosts"}"\nsudo = false\n'
            f'connect_timeout = "3s"\n\n{hosts}'
            f'[slack]\nalert_channel = "{alert_channel}"\n\n'
            '[access]\nteam_ids = ["T0LAB"]\n\n'
            '[[access.grants]]\nrole = "operator"\nmembers = ["U0OPERATOR"]\n\n'
            '[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n\n'
            f"{monitor}\n"
        )


@asynccontextmanager
async def farm(directory: Path, count: int, deferred: int = 10) -> AsyncIterator[Farm]:
    key = generate_client_key(directory)
    world = Farm(directory)
    async with AsyncExitStack() as stack:
        for n in range(count):
            name = f"h{n:02}" if count <= 100 else f"h{n:03}"
            world.deferred[name] = deferred
            server = ScriptedSSHServer(world.handler(name), key.public_key)
            world.servers[name] = await stack.enter_async_context(server)
        known = "".join(s.known_hosts_line() for s in world.servers.values())
        (directory / "known_hosts").write_text(known, encoding="ascii")
        yield world
