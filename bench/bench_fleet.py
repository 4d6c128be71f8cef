#!/usr/bin/env python3
"""Benchmark `/mailq summary all` over many hosts against the same summary of one host.

    .venv/bin/python bench/bench_fleet.py [--hosts 200] [--messages 200] [--delay-ms 50]
                                          [--repeat 5] [--concurrency 64]

The hosts are ``bench/server_farm.py``: in-process SSH servers in a separate process (so
their CPU is not charged to the bot), each with a small realistic queue, answering
``postqueue -j`` after ``--delay-ms`` (the command's run time on a real host plus the
network; 0 measures the bot's CPU alone). The bot side is the command's own fleet path
(``bot.fleet.FleetReader``, totals, the Slack and console rendering), with warm
connections (one untimed run first opens them, as a long-running bot keeps them open).

Timed, interleaved ``--repeat`` times: ONE = ``summary one`` (a group holding one host),
ALL = ``summary farm`` (every host). Targets: ALL < 2 s (200 hosts) and < 5 s (1,000);
ALL within 1.5x the bare-SSH floor of the same run (issue 15; needs ``--floor``); the
older ALL/ONE <= 3 is still printed. ``--profile FILE``: cProfile stats of the ALL runs.
After the warm-up the bench calls ``gc.freeze()``, as ``mailqbot serve`` does after
start-up (``--no-freeze``: not).
Results on stdout, progress on stderr.

``--floor`` also times, in the same interleaved rounds and over the same hosts and bytes,
what the listing costs before the bot does anything with it, for one host and for all:

- transport: one bare asyncssh session per host on its own open connection
  (``create_session`` with a session that only counts bytes: no streams, no parsing); the
  least any design that reads the listing over one SSH channel per host can cost;
- executor: ``SSHExecutor.stream`` of the listing, bytes counted, nothing parsed.

Their ALL/ONE ratios show how much of the summary's ratio the transport alone forces.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import asyncssh  # noqa: E402

from bot import render  # noqa: E402
from bot.demo.ssh import generate_client_key  # noqa: E402
from bot.fleet import FLEET_CONCURRENCY, FleetReader, FleetSummary, totals  # noqa: E402
from bot.inventory import Host, Inventory, load_config  # noqa: E402
from bot.postfix import tools  # noqa: E402
from bot.remote.audited import Remote  # noqa: E402
from bot.remote.ssh import CIPHERS, SSHExecutor  # noqa: E402

RATIO_TARGET = 3.0
FLOOR_TARGET = 1.5  # issue 15: ALL within 1.5x the bare-SSH floor of the same run
TIME_TARGET = 2.0  # 200 hosts
LARGE_TIME_TARGET = 5.0  # more (issue 15: 1,000 hosts)


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def quiet(_text: str) -> None:
    return None


async def summary(executor: SSHExecutor, inventory: Inventory, target: str, cap: int) -> float:
    """One `summary TARGET` as the command runs it (minus the audit write); seconds."""
    started = time.perf_counter()
    hosts = inventory.select(target)
    reader = FleetReader(Remote.reader(executor), time.time(), quiet, concurrency=cap)
    lines = await reader.read(hosts)
    failed = [line for line in lines if line.error]
    if failed:
        raise SystemExit(f"{len(failed)} hosts failed, e.g. {failed[0].host}: {failed[0].error}")
    elapsed = time.perf_counter() - started
    model = FleetSummary(target, reader.now, lines, totals(lines), elapsed)
    render.render("summary", model)
    return time.perf_counter() - started


class _Counting(asyncssh.SSHClientSession[bytes]):
    """A session that only counts what arrives and says when the channel closed."""

    def __init__(self, closed: asyncio.Future[int]) -> None:
        self.closed, self.received = closed, 0

    def data_received(self, data: bytes, _datatype: asyncssh.DataType) -> None:
        self.received += len(data)

    def connection_lost(self, _exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(self.received)


async def bare_listing(conn: asyncssh.SSHClientConnection, command_line: str) -> int:
    closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    channel, _ = await conn.create_session(lambda: _Counting(closed), command_line, encoding=None)
    channel.write_eof()
    return await closed


async def transport(conns: list[asyncssh.SSHClientConnection], command_line: str) -> float:
    """The bare transport floor: every host's listing, bytes counted only; seconds."""
    started = time.perf_counter()
    received = await asyncio.gather(*(bare_listing(conn, command_line) for conn in conns))
    if not all(received):
        raise SystemExit("a host sent no listing")
    return time.perf_counter() - started


async def executor_only(executor: SSHExecutor, inventory: Inventory, target: str) -> float:
    """The executor floor: ``SSHExecutor.stream`` of every listing, nothing parsed; seconds."""

    async def one(host: Host) -> int:
        async with executor.stream(host, tools.postqueue_json()) as out:
            return sum([len(chunk) async for chunk in out])

    started = time.perf_counter()
    received = await asyncio.gather(*(one(host) for host in inventory.select(target)))
    if not all(received):
        raise SystemExit("a host sent no listing")
    return time.perf_counter() - started


async def connect_bare(host: Host) -> asyncssh.SSHClientConnection:
    """A plain asyncssh connection, the host key pinned as the executor pins it."""
    return await asyncssh.connect(
        host.address,
        host.port,
        config=None,
        known_hosts=str(host.known_hosts),
        username=host.user,
        client_keys=[str(host.private_key)],
        agent_path=None,
        encryption_algs=CIPHERS,  # as the executor prefers
    )


async def open_bare(hosts: list[Host]) -> list[asyncssh.SSHClientConnection]:
    return list(await asyncio.gather(*(connect_bare(host) for host in hosts)))


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(directory: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    inventory = Inventory(load_config(directory / "mailqbot.toml"))
    kinds = ["summary", "transport", "executor"] if args.floor else ["summary"]
    times: dict[str, list[float]] = {f"{k}-{t}": [] for k in kinds for t in ("one", "farm", "cpu")}
    cpu: list[float] = []
    farm_cpu: list[float] = []
    listing = tools.postqueue_json().command_line()
    async with SSHExecutor() as executor:
        status(f"warming up: connecting to {args.hosts} hosts")
        cold = await summary(executor, inventory, "farm", args.concurrency)
        status(f"  first run (connects included): {cold:.2f} s")
        conns = await open_bare(list(inventory.select("farm"))) if args.floor else []
        runs: dict[str, Callable[[str], Awaitable[float]]] = {
            "summary": lambda target: summary(executor, inventory, target, args.concurrency),
            "transport": lambda target: transport(conns[:1] if target == "one" else conns, listing),
            "executor": lambda target: executor_only(executor, inventory, target),
        }
        for kind in kinds[1:]:  # warm the floors' paths once, untimed
            await runs[kind]("farm")
        if not args.no_freeze:
            gc.freeze()  # as `mailqbot serve` does once it has started
        try:
            for i in range(args.repeat):
                order = [(k, t) for k in kinds for t in ("one", "farm")]
                order = order[i % len(order) :] + order[: i % len(order)]
                for kind, target in order:
                    before, farm_before = time.process_time(), cpu_of(args.farm_pid)
                    profiling = args.profiler is not None and (kind, target) == ("summary", "farm")
                    if profiling:
                        args.profiler.enable()
                    times[f"{kind}-{target}"].append(await runs[kind](target))
                    if profiling:
                        args.profiler.disable()
                    if target == "farm":
                        times[f"{kind}-cpu"].append(time.process_time() - before)
                    if (kind, target) == ("summary", "farm"):
                        cpu.append(time.process_time() - before)
                        farm_cpu.append(cpu_of(args.farm_pid) - farm_before)
                status(
                    f"  run {i + 1}: one {times['summary-one'][-1]:.3f} s, "
                    f"all {times['summary-farm'][-1]:.3f} s"
                )
        finally:
            for conn in conns:
                conn.close()
    times["cpu"] = cpu
    times["farm_cpu"] = farm_cpu
    times["cold"] = [cold]
    return times


def report(args: argparse.Namespace, times: dict[str, list[float]], load: str) -> None:
    one, farm = statistics.median(times["summary-one"]), statistics.median(times["summary-farm"])
    ratio = farm / one
    cpu = statistics.median(times["cpu"])
    print(f"summary all over {args.hosts} hosts vs 1 host, warm connections")
    print(
        f"  hosts: bench/server_farm.py in its own process, {args.messages} messages each, "
        f"postqueue -j answering after {args.delay_ms:g} ms; concurrency cap {args.concurrency}"
    )
    print(f"  load average before: {load}")
    for kind in ("summary", "executor", "transport"):
        if f"{kind}-one" not in times:
            continue
        k_one, k_farm = (statistics.median(times[f"{kind}-{t}"]) for t in ("one", "farm"))
        k_cpu = 1000 * statistics.median(times[f"{kind}-cpu"]) / args.hosts
        print(
            f"  {kind:<9}  1 host {k_one:.3f} s, {args.hosts} hosts {k_farm:.3f} s, "
            f"ratio {k_farm / k_one:5.2f}x, bot CPU {k_cpu:.2f} ms per host   (all runs: "
            f"{', '.join(f'{t:.3f}' for t in times[f'{kind}-farm'])})"
        )
    if args.floor:
        print(
            "  (transport = bare asyncssh sessions, bytes counted only; executor = "
            "SSHExecutor.stream, bytes counted only; summary = the command's fleet path)"
        )
    print(f"  first run, connecting to every host: {times['cold'][0]:.2f} s")
    print(f"  bot CPU per host: {1000 * cpu / args.hosts:.1f} ms ({cpu:.2f} s per fleet run)")
    farm_cpu = statistics.median(times["farm_cpu"])
    print(f"  server farm CPU per fleet run: {farm_cpu:.2f} s (the simulated hosts' side)")
    verdict = "ok" if ratio <= RATIO_TARGET else "MISSED"
    print(f"  ratio all/one: {ratio:.2f}x (old target <= {RATIO_TARGET:g}x: {verdict})")
    if args.floor:
        bare = statistics.median(times["transport-farm"])
        through = statistics.median(times["executor-farm"])
        verdict = "ok" if farm <= FLOOR_TARGET * bare else "MISSED"
        print(
            f"  summary / bare-SSH floor, {args.hosts} hosts: {farm / bare:.2f}x "
            f"(target <= {FLOOR_TARGET:g}x: {verdict}); / executor floor: {farm / through:.2f}x"
        )
    limit = TIME_TARGET if args.hosts <= 200 else LARGE_TIME_TARGET
    verdict = "ok" if farm < limit else "MISSED"
    print(f"  all hosts: {farm:.2f} s (target < {limit:g} s: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=FLEET_CONCURRENCY)
    parser.add_argument(
        "--floor", action="store_true", help="also time the bare transport and the executor"
    )
    parser.add_argument(
        "--no-freeze", action="store_true", help="skip gc.freeze() after the warm-up"
    )
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the ALL runs here")
    args = parser.parse_args()
    args.profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="mailqbot-fleet-") as tmp:
        directory = Path(tmp)
        generate_client_key(directory)
        farm = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "server_farm.py"), tmp, str(args.hosts),
             "--messages", str(args.messages), "--delay-ms", str(args.delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            status(f"starting {args.hosts} SSH servers in process {farm.pid}")
            args.farm_pid = farm.pid
            assert farm.stdout is not None
            if farm.stdout.readline().strip() != "READY":
                raise SystemExit("the server farm did not start")
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            report(args, asyncio.run(measure(directory, args)), load)
            if args.profiler is not None:
                args.profiler.dump_stats(args.profile)
        finally:
            assert farm.stdin is not None
            farm.stdin.close()
            farm.wait(timeout=30)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
