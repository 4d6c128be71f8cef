"""A Postfix host in this process for the approval races: a real SSH server (asyncssh) whose
queue is a list of ``postqueue -j`` lines and whose ``postsuper`` is ``bot.demo.changes``.

It counts every ``postsuper`` it runs, and can hold a queue listing forever (``hold_listing``)
so a test can kill a bot process at a known point: after the claim, before any change.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.demo.changes import postsuper
from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key

TEAM = "T0RACE"
REQUESTER, APPROVER_A, APPROVER_B, VIEWER = "U0REQ", "U0APPA", "U0APPB", "U0VIEW"


def queue_lines(count: int, now: float, sender: str = "bulk@example.test") -> list[bytes]:
    lines = []
    for i in range(count):
        record = {
            "queue_name": "deferred", "queue_id": f"{0xA0000 + i:05X}{i:05X}",
            "arrival_time": int(now) - 3600 - i, "message_size": 1000 + i,
            "forced_expire": False, "sender": sender,
            "recipients": [{"address": f"user{i}@gone.example",
                            "delay_reason": "connect to mx.gone.example[192.0.2.1]:25: "
                                            "Connection refused"}],
        }  # fmt: skip
        lines.append(json.dumps(record).encode() + b"\n")
    return lines


@dataclass
class FakePostfix:
    lines: list[bytes]
    changes: list[tuple[list[str], bytes]] = field(default_factory=list)
    listings: int = 0
    hold_listing: int | None = None  # the listing number (1, 2, ...) that never answers
    cut_listing: int | None = None  # later listings end in the middle of the line after this

    async def handler(self, command_line: str, stdin: bytes) -> tuple[int, Stdout, bytes]:
        argv = shlex.split(command_line)
        argv = argv[4:] if argv[:1] == ["timeout"] else argv
        argv = argv[2:] if argv[:2] == ["sudo", "-n"] else argv
        if argv == ["/usr/sbin/postqueue", "-j"]:
            self.listings += 1
            if self.listings == self.hold_listing:
                await asyncio.Event().wait()
            if self.cut_listing is not None and self.listings > 1:
                cut = self.lines[self.cut_listing]
                return 0, b"".join(self.lines[: self.cut_listing]) + cut[: len(cut) // 2], b""
            return 0, b"".join(self.lines), b""
        if argv[:2] == ["/usr/sbin/postconf", "-h"]:
            return 0, b"3.7.11\n", b""
        if argv[:1] == ["/usr/sbin/postsuper"]:
            self.changes.append((argv, stdin))
            return postsuper(self.lines, argv, stdin)
        return 1, b"", f"not simulated: {command_line}\n".encode()


def config_text(workdir: Path, server: ScriptedSSHServer, approvals: int = 1) -> str:
    known = server.write_known_hosts(workdir / "known_hosts")
    return f"""
[ssh]
user = "race"
private_key = "{workdir / "id_ed25519"}"
known_hosts = "{known}"
sudo = false
connect_timeout = "5s"

[[hosts]]
name = "mx1"
address = "{server.address}"
port = {server.port}

[access]
team_ids = ["{TEAM}"]

[[access.grants]]
role = "operator"
members = ["{REQUESTER}", "{APPROVER_A}"]

[[access.grants]]
role = "approver"
members = ["{APPROVER_A}", "{APPROVER_B}", "{REQUESTER}"]

[[access.grants]]
role = "viewer"
members = ["{VIEWER}"]

[actions.purge]
approval = true
approvals = {approvals}

# The fake queue is all gone.example, so these tests' purges cover the whole queue and are
# purge_all plans (tests/security/test_purge_class.py covers that bar). They are about
# races, so here that class has the same approvers as a purge.
[actions.purge_all]
approval = true
approvals = {approvals}
approvers = ["role:approver", "role:admin"]

[actions.hold]
approval = true
approvers = ["{APPROVER_B}"]
"""


@dataclass
class RaceHost:
    fake: FakePostfix
    server: ScriptedSSHServer
    config: Path


@asynccontextmanager
async def race_host(
    workdir: Path, fake: FakePostfix, approvals: int = 1
) -> AsyncIterator[RaceHost]:
    key = generate_client_key(workdir)
    async with ScriptedSSHServer(fake.handler, key.public_key) as server:
        config = workdir / "race.toml"
        config.write_text(config_text(workdir, server, approvals))
        yield RaceHost(fake, server, config)
