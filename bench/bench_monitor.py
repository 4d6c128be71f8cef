#!/usr/bin/env python3
"""Benchmark the monitor: many simulated hosts polled by ONE process; CPU share, alert latency.

    .venv/bin/python bench/bench_monitor.py [--hosts 1000] [--interval 60] [--intervals 3]
                                            [--messages 50] [--hot 10] [--profile FILE]

The hosts are ``bench/server_farm.py`` (in-process SSH servers in a separate process, so
their CPU is not charged to the bot). The bot side is the real ``Monitor`` (leases, polls
through the SSH executor, samples and incidents in the database, alerts to a fake Slack
Web API). Warm-up lasts one interval and until every host has been polled (its connection
open: start-up's key exchanges and ``known_hosts`` parsing are not the steady state); the
SSH connections opened during the measurement are counted and printed. ``--hot`` hosts are
in a group "hot" from the start; at a known moment that group's deferred threshold is
lowered below their queue size; alert latency is from that moment to their root message in
Slack. CPU share = the bot process's CPU seconds (user + system) over the wall time of
``--intervals`` steady intervals; ``--profile`` writes cProfile stats (CPU time) of those intervals.
Targets (issue 6): CPU <= 25 % of one core; alert latency <= interval + 5 s.
Needs PostgreSQL (``MAILQBOT_TEST_PG``, as the tests) or ``--sqlite``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from scratch_db import migrated_database  # noqa: E402
from sqlalchemy import distinct, func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from bot.app.runtime import open_services  # noqa: E402
from bot.app.services import LiveServices  # noqa: E402
from bot.db.models import QueueSample  # noqa: E402
from bot.demo.ssh import generate_client_key  # noqa: E402
from bot.inventory import Inventory, parse_config  # noqa: E402
from bot.monitor.config import GroupMonitor, Rules, Threshold  # noqa: E402
from bot.monitor.metrics import Metrics  # noqa: E402
from bot.monitor.scheduler import Monitor  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.slack.alerts import SlackNotifier  # noqa: E402
from bot.slack.client import make_client  # noqa: E402
from helpers.fakes import FakeSlack  # noqa: E402

CHANNEL = "C0BENCH"


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_farm(directory: Path, hosts: int, messages: int) -> subprocess.Popen[str]:
    generate_client_key(directory)
    farm = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench/server_farm.py"),
            str(directory),
            str(hosts),
            "--messages",
            str(messages),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert farm.stdout is not None
    if farm.stdout.readline().strip() != "READY":
        raise SystemExit("the server farm did not start")
    return farm


async def database(use_sqlite: bool, directory: Path) -> str:
    return await migrated_database(use_sqlite, directory, f"mailqbot_bench_{os.getpid()}")


class Connects(logging.Handler):
    """Counts the executor's "connected to" records (a reconnect costs a key exchange)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("connected to")


async def all_polled(
    sessions: async_sessionmaker[AsyncSession], hosts: int, interval: float
) -> None:
    """Wait until every host has a good sample: its connection is open, so the measured
    intervals are the steady state, not the start-up's key exchanges."""
    started = time.monotonic()
    stmt = select(func.count(distinct(QueueSample.host))).where(QueueSample.ok.is_(True))
    while time.monotonic() - started < 5 * interval:
        async with sessions() as session:
            polled = int((await session.execute(stmt)).scalar_one())
        if polled >= hosts:
            return
        status(f"warm-up: {polled}/{hosts} hosts polled")
        await asyncio.sleep(5)
    raise SystemExit("not every host was polled within five intervals")


async def run(args: argparse.Namespace, directory: Path) -> None:
    url = await database(args.sqlite, directory)
    text = (directory / "mailqbot.toml").read_text(encoding="utf-8")
    text += f'\n[slack]\nalert_channel = "{CHANNEL}"\n\n'
    text += f'[monitor]\ninterval = "{args.interval:g}s"\n'
    text += "[monitor.rules]\ndeferred = { warning = 100000, critical = 200000 }\n"
    if args.group_all:  # every rule shares one incident across hosts (default: unreachable, spikes)
        text += '[monitor.grouping]\nrules = ["*"]\n'
    config = parse_config(text, "<bench>")
    hot = sorted(entry.name for entry in config.hosts)[: args.hot]
    entries = [  # in group "hot" from the start (no section yet): same hosts, same connections
        e.model_copy(update={"groups": [*e.groups, "hot"]}) if e.name in hot else e
        for e in config.hosts
    ]
    inventory = Inventory(config.model_copy(update={"hosts": entries}))
    async with FakeSlack() as slack:
        settings = Settings(DATABASE_URL=url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="x")
        async with open_services(settings, inventory) as services:
            monitor = Monitor(
                LiveServices(services),
                SlackNotifier(make_client(settings), CHANNEL),
                Metrics(services.sessions),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(monitor.run(stop))
            status(f"warm-up: one interval ({args.interval:g} s), {args.hosts} hosts")
            await asyncio.sleep(args.interval * 1.1)
            await all_polled(services.sessions, args.hosts, args.interval)
            low = Threshold(warning=1, critical=100000, clear=0)
            monitor.config = monitor.config.model_copy(  # group "hot" gets a low threshold
                update={"groups": {"hot": GroupMonitor(rules=Rules(deferred=low))}}
            )
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            connects = Connects()
            logging.getLogger("bot.remote.ssh").addHandler(connects)
            logging.getLogger("bot.remote.ssh").setLevel(logging.INFO)
            cpu0, wall0 = cpu(), time.monotonic()
            if profiler is not None:
                profiler.enable()
            await asyncio.sleep(args.interval * args.intervals)
            used, wall = cpu() - cpu0, time.monotonic() - wall0
            logging.getLogger("bot.remote.ssh").removeHandler(connects)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            stop.set()
            await task
        roots = [c for c in slack.calls_to("chat.postMessage") if not c.args.get("thread_ts")]
        latencies = sorted(c.time - wall0 for c in roots)  # the fake records monotonic time
    polls = args.hosts * args.intervals
    print(
        f"hosts {args.hosts}, interval {args.interval:g} s, {args.intervals} intervals "
        f"(~{polls:,} polls), {args.messages} messages per host"
    )
    print(
        f"CPU: {used:.1f} s over {wall:.0f} s = {100 * used / wall:.1f} % of one core "
        f"(target <= 25 %); SSH connections opened meanwhile: {connects.count}"
    )
    if latencies:
        print(
            f"alerts: {len(latencies)}/{len(hot)}; latency max {latencies[-1]:.1f} s, "
            f"median {latencies[len(latencies) // 2]:.1f} s "
            f"(target <= {args.interval + 5:g} s)"
        )
    else:
        print("alerts: none arrived")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--hot", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument(
        "--group-all",
        action="store_true",
        help="group every rule, so the hot hosts share one incident",
    )
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the measured intervals here"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailqbot-bench-") as tmp:
        directory = Path(tmp)
        farm = start_farm(directory, args.hosts, args.messages)
        try:
            asyncio.run(run(args, directory))
        finally:
            assert farm.stdin is not None
            farm.stdin.close()
            farm.wait(timeout=30)


if __name__ == "__main__":
    main()
