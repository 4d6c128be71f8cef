"""``mailqbot console --demo``: demo hosts with realistic queues, no Postfix or Slack needed.

Each demo host is a real in-process SSH server (``bot.demo.ssh``) that answers the same
fixed command lines a Postfix host does, from a queue generated here with Postfix's own
delay-reason texts. The bot reaches it through the real executor, pipeline and database.
"""

from __future__ import annotations

import random
import shlex
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson

from bot.app.runtime import open_services
from bot.app.services import Services
from bot.db.migrate import upgrade_async
from bot.demo.changes import postsuper
from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key
from bot.inventory import Inventory, parse_config
from bot.settings import Settings

MAIL_VERSION = "3.7.11"

# (weight, destination domain, MX host, delay reason): texts as Postfix writes them.
PROFILES: dict[str, list[tuple[int, str, str]]] = {
    "mx1": [
        (
            40,
            "gmail.example",
            "450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, "
            "see http://postgrey.example/{domain}.html",
        ),
        (
            25,
            "bigcorp.example",
            "connect to mx1.bigcorp.example[203.0.113.25]:25: Connection timed out",
        ),
        (
            10,
            "shop.example",
            "host mx.shop.example[198.51.100.7] said: 452 4.2.2 <{rcpt}>: "
            "Mailbox full (in reply to RCPT TO command)",
        ),
        (
            8,
            "lists.example",
            "host mx.lists.example[198.51.100.9] refused to talk to me: "
            "421 4.7.0 Too many connections, slow down",
        ),
        (
            5,
            "typo.example",
            "Host or domain name not found. Name service error for "
            "name=typo.example type=MX: Host not found, try again",
        ),
        (4, "old.example", "connect to mail.old.example[192.0.2.44]:25: Connection refused"),
    ],
    "mx2": [
        (
            50,
            "partner.example",
            "SASL authentication failed; server "
            "smtp.relay.example[192.0.2.10] said: 535 5.7.8 Error: authentication failed",
        ),
        (
            20,
            "secure.example",
            "TLS is required, but was not offered by host mx.secure.example[198.51.100.30]",
        ),
        (
            10,
            "bank.example",
            "host mx.bank.example[203.0.113.80] said: 554 5.7.1 Service "
            "unavailable; Client host [192.0.2.200] blocked using zen.spamhaus.org",
        ),
    ],
    "relay1": [
        (5, "gmail.example", "450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted"),
    ],
}
SIZES = {"mx1": 1840, "mx2": 420, "relay1": 12}
SENDERS = [
    "billing@shop.test",
    "noreply@app.test",
    "alerts@ops.test",
    "",
    "news@lists.test",
    "<!channel>@hostile.test",
]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]


@dataclass(frozen=True)
class DemoHost:
    name: str
    lines: list[bytes]


def demo_queue(host: str, count: int, now: float, seed: int = 25) -> list[bytes]:
    """``postqueue -j`` lines for a believable backed-up queue."""
    rng = random.Random(f"{seed}-{host}")  # noqa: S311 - demo data, not secrets
    profile = PROFILES[host]
    weights = [w for w, _, _ in profile]
    lines = []
    for _ in range(count):
        _, domain, reason = rng.choices(profile, weights)[0]
        rcpts = [
            f"{rng.choice(USERS)}{rng.randint(1, 99)}@{domain}"
            for _ in range(rng.choice((1, 1, 1, 2, 3)))
        ]
        record = {
            "queue_name": "deferred" if rng.random() > 0.02 else "hold",
            "queue_id": f"{rng.getrandbits(40):010X}",
            "arrival_time": int(now - rng.expovariate(1 / 14400)),
            "message_size": rng.randint(1500, 90000),
            "forced_expire": False,
            "sender": rng.choice(SENDERS),
            "recipients": [
                {"address": r, "delay_reason": reason.format(rcpt=r, domain=domain)} for r in rcpts
            ],
        }
        lines.append(orjson.dumps(record) + b"\n")
    for _ in range(rng.randint(0, 4)):  # a few in flight
        lines.append(
            orjson.dumps(
                {
                    "queue_name": "active",
                    "queue_id": f"{rng.getrandbits(40):010X}",
                    "arrival_time": int(now),
                    "message_size": 2048,
                    "forced_expire": False,
                    "sender": "noreply@app.test",
                    "recipients": [{"address": "someone@gmail.example"}],
                }
            )
            + b"\n"
        )
    return lines


def _handler(host: DemoHost):  # type: ignore[no-untyped-def]
    async def stream(lines: list[bytes]) -> AsyncIterator[bytes]:
        for start in range(0, len(lines), 500):
            yield b"".join(lines[start : start + 500])

    async def handle(command_line: str, stdin: bytes) -> tuple[int, Stdout, bytes]:
        tool = _tool_argv(command_line)
        if tool == ["/usr/sbin/postqueue", "-j"]:
            return 0, stream(list(host.lines)), b""
        if tool[:1] == ["/usr/sbin/postsuper"]:
            return postsuper(host.lines, tool, stdin)
        if tool[:2] in (["/usr/sbin/postqueue", "-f"], ["/usr/sbin/postqueue", "-i"]):
            return 0, b"", b""
        if tool[:2] == ["/usr/sbin/postconf", "-h"]:
            return 0, b"".join(_postconf(name) for name in tool[2:]), b""
        if tool[:2] == ["/usr/bin/du", "-sk"] and tool[2:] == ["/var/spool/postfix/deferred"]:
            return 0, f"{len(host.lines) * 12}\t{tool[2]}\n".encode(), b""
        if tool[:1] == ["/usr/sbin/postcat"] and tool[-2:-1] == ["-q"]:
            return demo_postcat(host, tool[-1], tool[1][1:] if len(tool) == 4 else "beh")
        return 1, b"", f"demo host: {' '.join(tool)} is not simulated\n".encode()

    return handle


def _tool_argv(command_line: str) -> list[str]:
    """The MTA tool's argv, without the ``timeout -k 5 N`` and ``sudo -n`` wrappers."""
    argv = shlex.split(command_line)
    if argv[:1] == ["timeout"]:
        argv = argv[4:]
    if argv[:2] == ["sudo", "-n"]:
        argv = argv[2:]
    return argv


def _postconf(name: str) -> bytes:
    values = {
        "mail_version": MAIL_VERSION,
        "maximal_queue_lifetime": "5d",
        "bounce_queue_lifetime": "$maximal_queue_lifetime",
        "queue_directory": "/var/spool/postfix",
    }
    return (values.get(name, "") + "\n").encode()


# -- postcat: envelope, headers and a body made up for each demo message ------------------

SUBJECTS = [
    "Invoice {n} for your order",
    "Your order {n} has shipped",
    "<!channel> urgent: verify your account",
    "Password reset <https://evil.test/reset|click here>",
    "=?utf-8?q?R=C3=A9union_d=27=C3=A9quipe_{n}?=",
]
SENTENCES = [
    "Thank you for your order; the details are below for your records.",
    "Please keep this message: it is the receipt for your payment.",
    "If you did not ask for this, you can ignore this message safely.",
    "Questions? Reply to this message and the support team will help.",
]


def demo_postcat(host: DemoHost, queue_id: str, flags: str) -> tuple[int, bytes, bytes]:
    """``postcat [-beh] -q ID`` for a demo message, generated the same way every time."""
    needle = queue_id.encode()
    line = next((line for line in host.lines if needle in line), None)
    if line is None:
        error = f"postcat: fatal: open queue file {queue_id}: No such file or directory\n"
        return 1, b"", error.encode()
    record = orjson.loads(line)
    headers, body = _demo_content(host.name, record)
    path = f"{record['queue_name']}/{queue_id[0]}/{queue_id}"
    parts = [f"*** ENVELOPE RECORDS {path} ***", *_demo_envelope(record)] if "e" in flags else []
    parts += [f"*** MESSAGE CONTENTS {path} ***"] if "e" in flags else []
    parts += headers if "h" in flags else []
    parts += ["", *body] if "b" in flags else []
    if "e" in flags:
        parts += [f"*** HEADER EXTRACTED {path} ***", f"*** MESSAGE FILE END {path} ***"]
    return 0, "".join(f"{part}\n" for part in parts).encode(), b""


def _demo_envelope(record: dict[str, Any]) -> list[str]:
    qid, size, when = record["queue_id"], record["message_size"], record["arrival_time"]
    rcpts = [r["address"] for r in record["recipients"]]
    done = [f"billing{size % 97}@partner.example"] if size % 5 == 0 else []
    sizes = (size, 812, len(rcpts) + len(done), 0, size, 0)
    lines = [
        "message_size: " + " ".join(f"{n:15d}" for n in sizes),
        f"message_arrival_time: {time.asctime(time.gmtime(when))}",
        f"create_time: {time.asctime(time.gmtime(when))}",
        f"named_attribute: log_ident={qid}",
        "named_attribute: rewrite_context=remote",
        f"sender: {record['sender']}",
        "named_attribute: log_message_origin=app.demo.test[192.0.2.15]",
        "named_attribute: helo_name=app.demo.test",
        "named_attribute: protocol_name=ESMTPS",
    ]
    for kind, address in [
        *(("recipient", a) for a in rcpts),
        *(("done_recipient", a) for a in done),
    ]:
        lines += [f"original_recipient: {address}", f"{kind}: {address}"]
    return lines


def _demo_content(host: str, record: dict[str, Any]) -> tuple[list[str], list[str]]:
    qid, when = record["queue_id"], record["arrival_time"]
    rng = random.Random(qid)  # noqa: S311 - demo data, not secrets
    first = record["recipients"][0]["address"]
    headers = [
        "Received: from app.demo.test (app.demo.test [192.0.2.15])",
        f"\tby {host}.demo.test (Postfix) with ESMTPS id {qid}",
        f"\tfor <{first}>; {formatdate(when)}",
        f"From: {record['sender'] or 'MAILER-DAEMON@' + host + '.demo.test'}",
        f"To: {first}",
        f"Subject: {rng.choice(SUBJECTS).format(n=rng.randint(1000, 99999))}",
        f"Date: {formatdate(when)}",
        f"Message-ID: <{qid.lower()}@app.demo.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    room = record["message_size"] - sum(len(h) + 2 for h in headers)
    body = [rng.choice(SENTENCES) for _ in range(max(1, room // 67))]
    return headers, body


def _config(workdir: Path, servers: dict[str, ScriptedSSHServer]) -> str:
    known = workdir / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in servers.values()), encoding="ascii")
    hosts = "".join(
        f'[[hosts]]\nname = "{name}"\naddress = "{s.address}"\nport = {s.port}\n'
        f'groups = ["{"edge" if name.startswith("mx") else "relay"}"]\n\n'
        for name, s in servers.items()
    )
    return (
        f'[ssh]\nuser = "demo"\nprivate_key = "{workdir / "id_ed25519"}"\n'
        f'known_hosts = "{known}"\nsudo = false\nconnect_timeout = "5s"\n\n{hosts}'
    )


@dataclass
class DemoHosts:
    inventory: Inventory
    servers: dict[str, ScriptedSSHServer]


@asynccontextmanager
async def demo_hosts(workdir: Path, now: float | None = None) -> AsyncIterator[DemoHosts]:
    """Start one in-process SSH server per demo host; the inventory points at them."""
    key = generate_client_key(workdir)
    now = time.time() if now is None else now
    async with AsyncExitStack() as stack:
        servers = {}
        for name, count in SIZES.items():
            host = DemoHost(name, demo_queue(name, count, now))
            servers[name] = await stack.enter_async_context(
                ScriptedSSHServer(_handler(host), key.public_key)
            )
        inventory = Inventory(parse_config(_config(workdir, servers), "<demo>"))
        yield DemoHosts(inventory, servers)


@asynccontextmanager
async def demo_services(database_url: str | None = None) -> AsyncIterator[Services]:
    """Demo hosts on loopback, a migrated database (a throwaway SQLite by default)."""
    with tempfile.TemporaryDirectory(prefix="mailqbot-demo-") as tmp:
        workdir = Path(tmp)
        url = database_url or f"sqlite+aiosqlite:///{workdir / 'demo.sqlite3'}"
        await upgrade_async(url)
        settings = Settings(DATABASE_URL=url, MAILQBOT_CONFIG=workdir / "demo.toml")
        async with demo_hosts(workdir) as demo, open_services(settings, demo.inventory) as services:
            yield services
