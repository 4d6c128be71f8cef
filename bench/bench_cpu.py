#!/usr/bin/env python3
"""The bot's CPU per message for `summary`, offline: no lab, no SSH, no queue refill.

    .venv/bin/python bench/bench_cpu.py [--messages 100000] [--repeat 7] [--tree DIR] [--ssh]
    .venv/bin/python bench/bench_cpu.py --fleet [--hosts 200] [--host-messages 200] [--chunk N]

Summarises a synthetic `postqueue -j` listing (``bench/listing.py``: the lab's capture
repeated with varied recipients and ages; ~440 bytes and ~1.46 recipients per message, ~810
distinct raw delay reasons at 100k) exactly as ``bot.postfix.reader`` does while the listing streams
in: chunks of 5.6 KiB (the average read the lab's sshd delivers), the audit sha256, the
parser and the summary builder. Reported: CPU µs per message (best of ``--repeat``, with the
cyclic GC on as in the bot, and off for comparison), the decode floor (``orjson.loads`` per
line) and the number of GC collections per run.

``--ssh`` also streams the same listing over SSH from ``bench/server_farm.py`` (one
in-process host in its own process, so its CPU is not the bot's) and reports the bot's CPU
per message for A = bare `postqueue -j` (bytes counted only) and
B = ``bot.postfix.reader.read_host`` (settings, listing parsed and summarised while it
streams), median of ``--repeat`` rounds on one warm connection. The farm writes the
listing in pieces of 5.6 KiB, one SSH packet each, as the lab's sshd forwards postqueue's
output.

``--fleet`` measures `summary all`'s per-host path instead: the listings
``bench/server_farm.py`` serves to ``bench_fleet.py`` (``--hosts`` hosts of ``--host-messages``
demo messages, ~390 bytes each), every host read by its own parser into its own
``BriefSummaryBuilder`` as ``bot.fleet`` does, in chunks of ``--chunk`` bytes (32 KiB: one
SSH packet of the farm's single write). Reported: CPU µs per message for the parse alone
(the parser call ``bot.postfix.reader._feed`` makes, results dropped) and for parse + count
(``_feed``, the folds and ``build()``, as ``reader._stream_summary``), best of ``--repeat``.

``--tree DIR`` measures another checkout's ``bot`` package (e.g. ``git archive`` of an older
commit unpacked in DIR), so before/after numbers come from the same data and script.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHUNK = 5_734  # bytes: the average SSH read of a 100k lab listing (bench_summary.py)


def summarise(chunks: list[bytes], now: float) -> Any:
    """One summary as ``bot.postfix.reader`` reads it (``feed_into`` if this tree has it)."""
    from bot.postfix.postfix import PostqueueJsonParser
    from bot.postfix.summary import SummaryBuilder

    parser, builder, digest = PostqueueJsonParser(), SummaryBuilder(now), hashlib.sha256()
    fast = hasattr(parser, "feed_into")
    for chunk in chunks:
        digest.update(chunk)
        if fast:
            parser.feed_into(chunk, builder.add_fields)
        else:
            for message in parser.feed(chunk):
                builder.add(message)
    parser.close()
    return builder.build()


def fleet_listings(hosts: int, messages: int, now: float) -> list[bytes]:
    """What ``bench/server_farm.py`` serves each of ``hosts`` hosts."""
    from bot.demo import PROFILES, demo_queue

    profiles = list(PROFILES)
    return [
        b"".join(demo_queue(profiles[n % len(profiles)], messages, now, n)) for n in range(hosts)
    ]


def fleet_parse(hosts: list[list[bytes]]) -> None:
    """Each host's listing through the parser call the fleet's reader makes."""
    from bot.postfix.postfix import PostqueueJsonParser

    def ignore(*_fields: object) -> None:
        return None

    for chunks in hosts:
        parser = PostqueueJsonParser()
        if hasattr(parser, "feed_records"):
            for chunk in chunks:
                parser.feed_records(chunk)
        else:
            for chunk in chunks:
                parser.feed_into(chunk, ignore)
        parser.close()


def fleet_count(hosts: list[list[bytes]], now: float) -> None:
    """Each host's listing parsed and counted as ``reader._stream_summary`` does."""
    from bot.fleet import HOST_KEYS
    from bot.postfix.postfix import PostqueueJsonParser
    from bot.postfix.reader import _feed, slices
    from bot.postfix.reasons import analyse
    from bot.postfix.summary_brief import BriefSummaryBuilder

    def fold(builder: Any) -> None:
        builder.fold({reason: analyse(reason) for reason in builder.pending_reasons()})

    for chunks in hosts:
        parser, builder = PostqueueJsonParser(), BriefSummaryBuilder(now, max_keys=HOST_KEYS)
        for chunk in chunks:
            for piece in slices(chunk):
                _feed(parser, piece, builder)
                if builder.fold_due():
                    fold(builder)
        parser.close()
        fold(builder)
        builder.build()


def fleet_report(args: argparse.Namespace) -> None:
    now = time.time()
    listings = fleet_listings(args.hosts, args.host_messages, now)
    size = args.chunk or 32_768
    hosts = [[data[i : i + size] for i in range(0, len(data), size)] for data in listings]
    n = sum(data.count(b"\n") for data in listings)
    fleet_count(hosts, now)  # warm caches and imports
    parse, _ = best(args.repeat, lambda: fleet_parse(hosts))
    both, collections = best(args.repeat, lambda: fleet_count(hosts, now))
    floor, _ = best(args.repeat, lambda: [decode_floor(data) for data in listings])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"bot CPU per message, summary all's path (tree {args.tree}, load average {load})")
    print(
        f"  listings: {len(listings)} hosts, {n:,} messages, "
        f"{sum(map(len, listings)) / n:.0f} bytes each, chunks of {size:,} bytes"
    )
    print(f"  parse:                {1e6 * parse / n:6.2f} µs/message")
    print(f"  parse + count:        {1e6 * both / n:6.2f} µs/message ({collections} collections)")
    print(f"  orjson.loads floor:   {1e6 * floor / n:6.2f} µs/message")


def decode_floor(data: bytes) -> None:
    import orjson

    for line in data.splitlines():
        orjson.loads(line)


def best(repeat: int, work: Callable[[], object]) -> tuple[float, int]:
    """Least CPU seconds of ``repeat`` runs, and the GC collections in the last one."""
    times, collections = [], 0
    for _ in range(repeat):
        before = sum(s["collections"] for s in gc.get_stats())
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
        collections = sum(s["collections"] for s in gc.get_stats()) - before
    return min(times), collections


async def over_ssh(directory: Path, n: int, repeat: int) -> tuple[float, float, float, float]:
    """Median bot CPU seconds (and wall seconds) of A (bare) and B (summary) runs."""
    from bot.inventory import Inventory, load_config
    from bot.postfix import tools
    from bot.postfix.reader import read_host
    from bot.remote.audited import Remote
    from bot.remote.ssh import SSHExecutor

    host = Inventory(load_config(directory / "mailqbot.toml")).get("h000")

    async def quiet(_text: str) -> None:
        return None

    async def bare() -> None:
        async with executor.stream(host, tools.postqueue_json()) as out:
            async for _chunk in out:
                pass

    async def summary() -> None:
        reading = await read_host(Remote.reader(executor), host, time.time())
        assert reading.summary.total_messages == n

    runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    async with SSHExecutor() as executor:
        await bare()
        await summary()
        for i in range(repeat):
            for step in "ab" if i % 2 == 0 else "ba":
                cpu, wall = time.process_time(), time.perf_counter()
                await (bare() if step == "a" else summary())
                runs[step].append((time.process_time() - cpu, time.perf_counter() - wall))
    return (
        statistics.median(c for c, _ in runs["a"]),
        statistics.median(c for c, _ in runs["b"]),
        statistics.median(w for _, w in runs["a"]),
        statistics.median(w for _, w in runs["b"]),
    )


def ssh_report(data: bytes, n: int, repeat: int) -> None:
    from bot.demo.ssh import generate_client_key

    with tempfile.TemporaryDirectory(prefix="mailqbot-cpu-") as tmp:
        directory = Path(tmp)
        (directory / "listing.jsonl").write_bytes(data)
        generate_client_key(directory)
        farm = subprocess.Popen(
            [sys.executable, str(HERE / "server_farm.py"), tmp, "1",
             "--listing", str(directory / "listing.jsonl"), "--chunk", str(CHUNK)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert farm.stdout is not None
            if farm.stdout.readline().strip() != "READY":
                raise SystemExit("the server farm did not start")
            a, b, a_wall, b_wall = asyncio.run(over_ssh(directory, n, repeat))
        finally:
            assert farm.stdin is not None
            farm.stdin.close()
            farm.wait(timeout=30)
    print("  over SSH from bench/server_farm.py (bot CPU, median):")
    print(f"    A bare postqueue -j:  {1e6 * a / n:6.2f} µs/message (wall {a_wall:.2f} s)")
    print(f"    B summary:            {1e6 * b / n:6.2f} µs/message (wall {b_wall:.2f} s)")
    print(f"    B - A:                {1e6 * (b - a) / n:6.2f} µs/message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    parser.add_argument("--ssh", action="store_true")
    parser.add_argument("--fleet", action="store_true", help="summary all's per-host path")
    parser.add_argument("--hosts", type=int, default=200, help="with --fleet")
    parser.add_argument("--host-messages", type=int, default=200, help="with --fleet")
    parser.add_argument("--chunk", type=int, default=0, help="bytes per read (with --fleet)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree))
    sys.path.insert(1, str(HERE))
    if args.fleet:
        fleet_report(args)
        return
    from listing import synthetic_listing

    now = int(time.time())
    data = synthetic_listing(args.messages, now)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    n = args.messages
    summarise(chunks, now)  # warm caches and imports
    on, collections = best(args.repeat, lambda: summarise(chunks, now))
    gc.disable()
    off, _ = best(args.repeat, lambda: summarise(chunks, now))
    gc.enable()
    floor, _ = best(args.repeat, lambda: decode_floor(data))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"bot CPU per message, offline (tree {args.tree}, load average {load})")
    print(f"  listing: {n:,} messages, {len(data) / n:.0f} bytes each, chunks of {CHUNK:,} bytes")
    print(f"  summary path, gc on:  {1e6 * on / n:6.2f} µs/message ({collections} collections)")
    print(f"  summary path, gc off: {1e6 * off / n:6.2f} µs/message")
    print(f"  orjson.loads floor:   {1e6 * floor / n:6.2f} µs/message")
    if args.ssh:
        ssh_report(data, n, args.repeat)


if __name__ == "__main__":
    main()
