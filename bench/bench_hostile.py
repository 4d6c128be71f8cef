#!/usr/bin/env python3
"""Hostile input: `/mailq summary HOST` when every message has its own 2 KB reply word.

    .venv/bin/python bench/bench_hostile.py [--messages 1000] [--word 2048] [--repeat 5]
    .venv/bin/python bench/bench_hostile.py --tree DIR    # another checkout's bot package

A remote server writes what it likes into its reply, and Postfix keeps it as the delay
reason. Here each of ``--messages`` deferred messages has a reason of its own holding one
``--word``-character word built from the pieces the old reason patterns choked on (``a.``,
``1.``, ``a[``, ``a@``, ...), so no cache helps. An in-process SSH server
(``bot.demo.ssh.ScriptedSSHServer``) answers ``postconf`` and streams the listing; the bot
reads it through the real ``SSHExecutor`` and ``bot.postfix.reader.read_host`` and renders the
reply.
The reason caches are emptied before every round.

Measured in each round, on one warm connection:

- wall time of the summary, for the hostile listing (H) and, as the yardstick, for an
  ordinary one of the same size whose reasons are as long but made of plain words (O);
  H/O is the ratio (the lab's real tools cannot read this queue, so the bot's own ordinary
  run is the comparison);
- the longest stall of the event loop: a ticker task sleeps 1 ms at a time while the
  summary runs and records the longest gap between its wake-ups, less the 1 ms (wall), and
  the CPU this thread spent between two wake-ups (CPU: other processes on the machine
  cannot inflate it).

Targets (mailqbot issue 12, item 7): H under 1 s, no stall over 100 ms. ``--tree DIR`` runs
the same rounds on another checkout's ``bot`` package (``git archive`` of an older commit
unpacked in DIR) for before/after numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
PIECES = ["a.", "1.", "a[", "a.b[", "-.", "a@", "1.1.1.1.", "<a@"]
TARGET_SECONDS = 1.0
TARGET_STALL = 0.100
TICK = 0.001


def tag(n: int) -> str:
    return "".join(string.ascii_lowercase[int(d)] for d in f"{n:06d}")


def reason(n: int, word_length: int, hostile: bool) -> str:
    if hostile:
        word = (tag(n) + PIECES[n % len(PIECES)] * word_length)[:word_length]
    else:  # as long, in plain words
        word = " ".join(["please", "come", "back", "later", tag(n)] * word_length)[:word_length]
    host = f"mx.d{n % 50}.test[192.0.2.{n % 250}]"
    return f"host {host} said: 450 4.7.1 {word} (in reply to RCPT TO command)"


def listing(count: int, word_length: int, hostile: bool, now: int) -> bytes:
    lines = []
    for n in range(count):
        rcpt = f"user{n}@d{n % 50}.test"
        record = {
            "queue_name": "deferred",
            "queue_id": f"{0x100000000 + n:X}",
            "arrival_time": now - n * 37 % 90_000,
            "message_size": 1000 + n,
            "forced_expire": False,
            "sender": f"s{n % 20}@shop.example",
            "recipients": [{"address": rcpt, "delay_reason": reason(n, word_length, hostile)}],
        }
        lines.append(orjson.dumps(record) + b"\n")
    return b"".join(lines)


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


def clear_reason_caches() -> None:
    from bot.postfix import reasons

    for cached in vars(reasons).values():
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


async def watched(work: Awaitable[Any]) -> tuple[float, float, float]:
    """Run ``work``; its wall time, and the longest wall and CPU gaps of a 1 ms ticker."""
    done = False
    longest_wall = longest_cpu = 0.0

    async def ticker() -> None:
        nonlocal longest_wall, longest_cpu
        wall, cpu = time.perf_counter(), time.thread_time()
        while not done:
            await asyncio.sleep(TICK)
            now_wall, now_cpu = time.perf_counter(), time.thread_time()
            longest_wall = max(longest_wall, now_wall - wall - TICK)
            longest_cpu = max(longest_cpu, now_cpu - cpu)
            wall, cpu = now_wall, now_cpu

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(TICK)
    started = time.perf_counter()
    await work
    elapsed = time.perf_counter() - started
    done = True
    await ticking
    return elapsed, longest_wall, longest_cpu


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot import render
    from bot.demo.ssh import ScriptedSSHServer, Stdout, generate_client_key
    from bot.inventory import Inventory, parse_config
    from bot.postfix.reader import read_host
    from bot.postfix.tools import postconf_version
    from bot.remote.audited import Remote
    from bot.remote.ssh import SSHExecutor
    from commands.summary import HostSummary

    now = int(time.time())
    data = {
        kind: listing(args.messages, args.word, kind == "hostile", now)
        for kind in ("hostile", "ordinary")
    }
    current = ["hostile"]

    async def handle(command_line: str, _stdin: bytes) -> tuple[int, Stdout, bytes]:
        if "/usr/sbin/postconf" in command_line:
            return 0, b"3.7.11\n5d\n5d\n/var/spool/postfix\n", b""
        if command_line.endswith("/usr/sbin/postqueue -j"):
            return 0, pieces(data[current[0]]), b""
        return 1, b"", b"not simulated\n"

    async def summary() -> None:
        reading = await read_host(Remote.reader(executor, keep_records=False), host, now)
        assert reading.summary.total_messages == args.messages
        render.render("summary", HostSummary("sim", reading.summary, reading.settings, None))

    results: dict[str, list[tuple[float, float, float]]] = {"hostile": [], "ordinary": []}
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_client_key(Path(tmp))
        async with ScriptedSSHServer(handle, key.public_key) as server:
            known = server.write_known_hosts(Path(tmp) / "known_hosts")
            config = (
                f'[ssh]\nuser = "b"\nprivate_key = "{key.private_key}"\nknown_hosts = '
                f'"{known}"\n\n[[hosts]]\nname = "sim"\naddress = "{server.address}"\n'
                f"port = {server.port}\n"
            )
            host = Inventory(parse_config(config)).get("sim")
            async with SSHExecutor() as executor:
                await executor.run(host, postconf_version())
                await summary()  # warm: connection, settings, imports
                for _ in range(args.repeat):
                    for kind in ("hostile", "ordinary"):
                        current[0] = kind
                        clear_reason_caches()
                        results[kind].append(await watched(summary()))
    return {
        "listing_bytes": {kind: len(value) for kind, value in data.items()},
        "results": results,
    }


def describe_tree(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip() or str(tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--word", type=int, default=2048, help="characters in the hostile word")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose bot to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    measured = asyncio.run(run(args))
    print("mailqbot bench: summary of a hostile listing (each reason with its own long word)")
    print(f"tree      {args.tree} ({describe_tree(args.tree)})")
    print(f"listing   {args.messages:,} deferred messages, one {args.word:,}-character word each;")
    print(f"          {measured['listing_bytes']['hostile'] / 2**20:.1f} MiB of postqueue -j")
    print(f"load avg  {load} (1/5/15 min, at the start); {args.repeat} rounds")
    print("          wall s (median, min)   longest stall wall ms   CPU ms (max over rounds)")
    summary = {}
    for kind, rows in measured["results"].items():
        walls = [r[0] for r in rows]
        stall_wall, stall_cpu = max(r[1] for r in rows), max(r[2] for r in rows)
        summary[kind] = (statistics.median(walls), min(walls), stall_wall, stall_cpu)
        print(
            f"  {kind:9s}  {summary[kind][0]:6.3f} {summary[kind][1]:6.3f}"
            f"          {stall_wall * 1000:8.1f}          {stall_cpu * 1000:8.1f}"
        )
    hostile, ordinary = summary["hostile"], summary["ordinary"]
    print(f"  H/O (medians) {hostile[0] / ordinary[0]:.2f}x")
    time_ok = hostile[0] < TARGET_SECONDS
    stall_ok = max(hostile[2], ordinary[2]) < TARGET_STALL
    print(
        f"verdicts: hostile summary {hostile[0]:.3f} s (target < {TARGET_SECONDS:g} s: "
        f"{'met' if time_ok else 'MISSED'}); longest stall "
        f"{max(hostile[2], ordinary[2]) * 1000:.0f} ms (target < {TARGET_STALL * 1000:.0f} ms: "
        f"{'met' if stall_ok else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
