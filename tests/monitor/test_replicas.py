"""Three `mailqbot serve` processes on one PostgreSQL share 50 simulated hosts through leases.

The hosts are real SSH servers in this process that record when each was polled. With a
3 s interval: every host is polled once per interval (no host twice within half an
interval, about ten polls in ten intervals), all three processes take a share, five hosts
over the threshold give exactly five root messages, and after ``kill -9`` of one process
every host it polled is polled again within two intervals.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db.models import HostLease, QueueSample
from bot.db.session import make_engine, make_sessionmaker
from helpers.fakes import FakeSlack
from helpers.simhosts import Farm, farm

MAILQBOT = Path(sys.executable).parent / "mailqbot"
INTERVAL = 3.0  # seconds: long enough that scheduling delays on a loaded 2-core machine stay small
HOSTS = 50
HOT = 5  # hosts over the threshold
MONITOR = f"""[monitor]
interval = "{INTERVAL:g}s"
jitter = 0
[monitor.rules]
deferred = {{ warning = 100, critical = 1000, clear = 80 }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(
    name: str, config: Path, slack: FakeSlack, db_url: str
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "secret",
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": db_url,
        "MAILQBOT_CONFIG": str(config),
        "MAILQBOT_REPLICA_ID": name,
        "MAILQBOT_METRICS_PORT": "0",  # three processes on one machine
    }
    with (config.parent / f"{name}.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            str(MAILQBOT),
            "serve",
            "--port",
            str(free_port()),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )


@pytest.fixture
async def replicas(
    tmp_path: Path, db_url: str
) -> AsyncIterator[tuple[Farm, FakeSlack, dict[str, asyncio.subprocess.Process]]]:
    async with FakeSlack() as slack, farm(tmp_path, HOSTS) as world:
        for n in range(HOT):
            world.deferred[f"h{n:02}"] = 150
        config = tmp_path / "mailqbot.toml"
        config.write_text(world.config(MONITOR), encoding="utf-8")
        processes = {f"r{n}": await start(f"r{n}", config, slack, db_url) for n in range(3)}
        try:
            yield world, slack, processes
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.terminate()
                await process.wait()


async def owners(db_url: str) -> dict[str, str | None]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(select(HostLease.host, HostLease.owner))).all()
        return dict(rows)
    finally:
        await engine.dispose()


async def sample_times(db_url: str, start: float, end: float) -> dict[str, list[float]]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            stmt = select(QueueSample.host, QueueSample.at).where(
                QueueSample.at >= start, QueueSample.at < end
            )
            rows = (await session.execute(stmt.order_by(QueueSample.at))).all()
    finally:
        await engine.dispose()
    times: dict[str, list[float]] = {}
    for host, at in rows:
        times.setdefault(host, []).append(at)
    return times


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_three_processes_share_fifty_hosts(
    replicas: tuple[Farm, FakeSlack, dict[str, asyncio.subprocess.Process]], db_url: str
) -> None:
    world, slack, processes = replicas
    async with asyncio.timeout(30):  # all three hold a share
        while len({o for o in (await owners(db_url)).values() if o}) < 3:
            await asyncio.sleep(0.5)
    start = time.time()
    await asyncio.sleep(10 * INTERVAL)
    end = time.time()
    starts = await sample_times(db_url, start, end)  # when each poll started, per host
    for host in world.servers:
        times = starts.get(host, [])
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert 9 <= len(times) <= 11, (host, len(times))
        assert min(gaps) > INTERVAL / 2, (host, gaps)
    roots = [c for c in slack.calls_to("chat.postMessage") if not c.args.get("thread_ts")]
    assert sorted(c.args["text"].split()[1] for c in roots) == [f"h{n:02}:" for n in range(HOT)]

    leases = await owners(db_url)
    victim = max(processes, key=lambda r: sum(o == r for o in leases.values()))
    orphans = [h for h, o in leases.items() if o == victim]
    processes[victim].send_signal(signal.SIGKILL)
    killed = time.time()
    await processes[victim].wait()
    await asyncio.sleep(3 * INTERVAL)
    for host in orphans:
        before = [t for t in world.polls[host] if t <= killed]
        after = [t for t in world.polls[host] if t > killed]
        assert after, host
        assert after[0] - before[-1] <= 2 * INTERVAL, (host, after[0] - before[-1])
    leases = await owners(db_url)
    assert victim not in leases.values()
    roots = [c for c in slack.calls_to("chat.postMessage") if not c.args.get("thread_ts")]
    assert len(roots) == HOT  # the survivors took the open incidents over, no new roots
