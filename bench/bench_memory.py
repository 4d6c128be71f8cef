#!/usr/bin/env python3
"""Peak memory of `/mailq summary HOST` at 1M simulated queued messages vs 100k.

    .venv/bin/python bench/bench_memory.py [--sizes 100000,1000000] [--variety high|demo]

Each size is measured in a fresh Python process: an in-process SSH server
(``bot.demo.ssh.ScriptedSSHServer``) streams generated ``postqueue -j`` lines (made on the
fly, never held), and the bot reads them through the real ``SSHExecutor`` and
``bot.postfix.reader.read_host`` (postconf, listing, du), then renders the reply. Reported per size:
the tracemalloc peak (Python allocations made during the read, server side included) and
ru_maxrss (the whole process's peak resident set). Tracing makes the read about five times
slower, so the child lifts ``postqueue -j``'s 60 s remote time limit for this run only.

``--variety high`` (default) is the worst case for the bounded counters: every message has
its own sender and queue ID, senders come from 50,000 domains and recipients from 20,000,
so every counter reaches its ``max_keys`` cap. ``demo`` is the demo hosts' realistic mix.
Target (mailqbot issue): largest/smallest <= 1.2 on both measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from bot import render  # noqa: E402
from bot.demo import demo_queue  # noqa: E402
from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key  # noqa: E402
from bot.inventory import Inventory, parse_config  # noqa: E402
from bot.postfix import tools  # noqa: E402
from bot.postfix.reader import read_host  # noqa: E402
from bot.remote.audited import Remote  # noqa: E402
from bot.remote.command import RemoteCommand  # noqa: E402
from bot.remote.ssh import SSHExecutor  # noqa: E402
from commands.summary import HostSummary  # noqa: E402

TARGET = 1.2
BATCH = 1000
REASONS = [
    "connect to mx.d{d}.test[192.0.2.{i}]:25: Connection timed out",
    "host mx.d{d}.test[198.51.100.{i}] said: 450 4.7.1 <{rcpt}>: Recipient address rejected: "
    "Greylisted, see http://postgrey.example/d{d}.html (in reply to RCPT TO command)",
    "delivery temporarily suspended: connect to mx.d{d}.test[203.0.113.{i}]:25: Connection refused",
    "TLS is required, but was not offered by host mx.d{d}.test[192.0.2.{i}]",
]


def high_variety(n: int, now: int) -> bytes:
    d = n * 7919 % 20_000
    rcpt = f"user{n}@d{d}.test"
    record = {
        "queue_name": "deferred" if n % 50 else "hold",
        "queue_id": f"{0x100000000 + n:X}",
        "arrival_time": now - n * 13 % 400_000,
        "message_size": 1000 + n % 90_000,
        "forced_expire": False,
        "sender": f"s{n}@x{n % 50_000}.test",
        "recipients": [
            {"address": rcpt, "delay_reason": REASONS[n % 4].format(d=d, i=n % 250, rcpt=rcpt)}
        ],
    }
    return orjson.dumps(record) + b"\n"


def listing(count: int, variety: str, now: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            if variety == "high":
                yield b"".join(high_variety(n, now) for n in range(start, start + size))
            else:
                yield b"".join(demo_queue("mx1", size, now, seed=start))
            await asyncio.sleep(0)

    return chunks()


def handler(count: int, variety: str, now: int):  # type: ignore[no-untyped-def]
    async def handle(command_line: str, _stdin: bytes) -> tuple[int, Stdout, bytes]:
        if "/usr/sbin/postconf" in command_line:
            return 0, b"3.7.11\n5d\n5d\n/var/spool/postfix\n", b""
        if command_line.endswith("/usr/sbin/postqueue -j"):
            return 0, listing(count, variety, now), b""
        if "/usr/bin/du" in command_line:
            return 0, f"{count * 4}\t/var/spool/postfix/deferred\n".encode(), b""
        return 1, b"", b"not simulated\n"

    return handle


async def quiet(_text: str) -> None:
    return None


def long_listing() -> RemoteCommand:
    """``postqueue -j`` with room for a traced 1M-message read (the template allows 60 s)."""
    return RemoteCommand(argv=(tools.POSTQUEUE, "-j"), remote_timeout=3600)


async def child(count: int, variety: str) -> dict[str, Any]:
    tools.postqueue_json = long_listing  # tracemalloc slows the read ~5x
    now = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_client_key(Path(tmp))
        async with ScriptedSSHServer(handler(count, variety, now), key.public_key) as server:
            known = server.write_known_hosts(Path(tmp) / "known_hosts")
            config = (
                f'[ssh]\nuser = "b"\nprivate_key = "{key.private_key}"\nknown_hosts = '
                f'"{known}"\ncommand_timeout = "1h"\n\n[[hosts]]\nname = "sim"\n'
                f'address = "{server.address}"\nport = {server.port}\n'
            )
            host = Inventory(parse_config(config)).get("sim")
            async with SSHExecutor() as executor:
                await executor.run(host, tools.postconf_version())  # connect before measuring
                tracemalloc.start()
                started = time.perf_counter()
                reading = await read_host(Remote.reader(executor), host, now, disk=True)
                model = HostSummary("sim", reading.summary, reading.settings, reading.disk)
                render.render("summary", model)
                elapsed = time.perf_counter() - started
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert reading.summary.total_messages == count, reading.summary.total_messages
    return {"count": count, "peak": peak, "rss": rss_kib * 1024, "seconds": elapsed}


def measure(count: int, variety: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(count), "--variety", variety],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the {count:,}-message run failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--variety", choices=("high", "demo"), default="high")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.variety))))
        return
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size:,} messages in a fresh process…", file=sys.stderr, flush=True)
        results.append(measure(size, args.variety))
    print(f"summary peak memory by queue size ({args.variety} variety), load before: {load}")
    for r in results:
        print(
            f"  {r['count']:>9,} messages: tracemalloc peak {mib(r['peak'])}, "
            f"ru_maxrss {mib(r['rss'])}, {r['seconds']:.1f} s (traced)"
        )
    first, last = results[0], results[-1]
    for what in ("peak", "rss"):
        ratio = last[what] / first[what]
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(f"  {what} ratio {last['count']:,}/{first['count']:,}: {ratio:.2f}x "
              f"(target <= {TARGET:g}x: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
