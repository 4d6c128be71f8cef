#!/usr/bin/env python3
"""Benchmark `/mailq summary HOST` (over SSH, end to end) against `qshape deferred` on the host.

    sudo .venv/bin/python bench/bench_qshape.py [--fill N] [--repeat 5]
                                                [--config PATH] [--host lab]

``--fill N`` first runs ``tests/lab/fill.py N --clear``: it CLEARS the shared lab queue and
refills it (100,000 messages take a few minutes); without it the queue is measured as it is.

Timed, interleaved ``--repeat`` times on the same queue (A B, B A, ...):
A = ``/usr/sbin/qshape deferred`` run locally as root (the lab host is this machine);
B = the summary as the command builds it: ``bot.postfix.reader.read_host`` over one warm SSH
connection (``postconf`` settings, read in the cold run and then reused for 5 minutes as the
bot reuses them; ``postqueue -j`` parsed while it streams, with ``sudo du`` on the deferred
spool alongside), then rendered for Slack and the console. One cold B run (connecting and
``postconf`` included) is reported too. ``bench_summary.py`` runs the same comparison (its
Q/C) next to bare ``postqueue -j``.

Numbers: ``qshape deferred`` and ``qshape -s deferred`` are run just before and just after
one B; when both are unchanged (the queue held still), B's tables must equal them exactly.
Target (mailqbot issue): A/B >= 1.4 with equal numbers. Results on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot import render  # noqa: E402
from bot.inventory import Host, Inventory, load_config  # noqa: E402
from bot.postfix.qshape import parse_qshape, shape_table  # noqa: E402
from bot.postfix.reader import HostReading, read_host  # noqa: E402
from bot.remote.audited import Remote  # noqa: E402
from bot.remote.ssh import SSHExecutor  # noqa: E402
from commands.summary import HostSummary  # noqa: E402

DEFAULT_CONFIG = "/var/lib/mailqbot-lab/mailqbot.toml"
QSHAPE = "/usr/sbin/qshape"
FILL = REPO / "tests" / "lab" / "fill.py"
TARGET = 1.4
Table = dict[str, tuple[int, ...]]


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def quiet(_text: str) -> None:
    return None


async def qshape(*flags: str) -> tuple[float, Table]:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        QSHAPE, *flags, "deferred", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"qshape failed: {err.decode().strip()}")
    return time.perf_counter() - started, parse_qshape(out.decode())


async def summary(
    executor: SSHExecutor, host: Host, now: float | None = None
) -> tuple[float, HostReading]:
    started = time.perf_counter()
    now = time.time() if now is None else now
    reading = await read_host(Remote.reader(executor), host, now, disk=True)
    render.render(
        "summary", HostSummary(host.name, reading.summary, reading.settings, reading.disk)
    )
    return time.perf_counter() - started, reading


async def compare(executor: SSHExecutor, host: Host) -> str:
    """B's qshape tables against qshape's, both started in the same second; a verdict."""
    diff: dict[str, object] = {}
    for _ in range(3):
        await asyncio.sleep(1.1 - time.time() % 1)  # start early in a second: same clock
        now = time.time()
        recipients, senders, (_, reading) = await asyncio.gather(
            qshape(), qshape("-s"), summary(executor, host, now)
        )
        theirs = [recipients[1], senders[1]]
        ours = [
            shape_table(reading.summary.deferred_shape),
            shape_table(reading.summary.deferred_sender_shape),
        ]
        if ours == theirs:
            rows = len(theirs[0]) - 1
            return f"equal (qshape deferred: {rows} domains, every column; qshape -s too)"
        diff = {k: (ours[0].get(k), v) for k, v in theirs[0].items() if ours[0].get(k) != v}
        status(f"  tables differ (queue changing?): {sorted(diff.items())[:3]}")
    return f"DIFFERENT in 3 tries (is the queue changing?): {sorted(diff.items())[:5]}"


async def run(args: argparse.Namespace) -> None:
    host = Inventory(load_config(Path(args.config))).get(args.host)
    host = host.model_copy(update={"command_timeout": 600.0})
    a_times: list[float] = []
    b_times: list[float] = []
    async with SSHExecutor() as executor:
        cold, reading = await summary(executor, host)
        messages = reading.summary.total_messages
        status(f"queue: {messages:,} messages; cold summary {cold:.2f} s")
        for i in range(args.repeat):
            for step in "ab" if i % 2 == 0 else "ba":
                if step == "a":
                    a_times.append((await qshape())[0])
                else:
                    b_times.append((await summary(executor, host))[0])
            status(f"  run {i + 1}: qshape {a_times[-1]:.2f} s, summary {b_times[-1]:.2f} s")
        verdict = await compare(executor, host)
    a, b = statistics.median(a_times), statistics.median(b_times)
    disk = reading.disk
    print(f"summary over SSH vs qshape deferred on {args.host}: {messages:,} messages queued")
    print(f"  load average before: {args.load}")
    print(f"  qshape deferred (local, root): median {a:.2f} s  ({_list(a_times)})")
    print(f"  summary (SSH, warm, rendered): median {b:.2f} s  ({_list(b_times)})")
    print(f"  summary, cold (connect included): {cold:.2f} s")
    print(f"  disk use: {disk.bytes if disk and disk.bytes is not None else disk}")
    ratio = a / b
    verdict_time = "ok" if ratio >= TARGET else "MISSED"
    print(f"  speed-up qshape/summary: {ratio:.2f}x (target >= {TARGET:g}x: {verdict_time})")
    print(f"  qshape numbers: {verdict}")


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill", type=int, help="clear the lab queue and inject N messages")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--host", default="lab")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: qshape reads the queue files directly")
    if args.fill:
        status(f"filling the lab queue with {args.fill:,} messages (clears it first)")
        subprocess.run([sys.executable, str(FILL), str(args.fill), "--clear"], check=True)
    args.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
