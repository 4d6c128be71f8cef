#!/usr/bin/env python3
"""Benchmark ``/metrics``: scrape cost at 1 and 10 million stored samples (SQLite).

    .venv/bin/python bench/bench_metrics.py [--sizes 1000000,10000000] [--hosts 200]
                                            [--scrapes 200] [--old-scrapes 5] [--db FILE]

A SQLite database at the current schema (the real migrations) is filled by bulk INSERT ...
SELECT over a recursive CTE: N rows of ``queue_samples`` (200 hosts' polls) and N rows of
``command_runs`` (what the old scrape counted with a GROUP BY), plus N/1000 resolved
incidents and a few open ones. The metrics are those of a process polling ``--hosts``
hosts (one in ten failing), served by the real listener (``Metrics.handler`` on loopback)
and scraped over HTTP ``--scrapes`` times at each size.

Reference in the same run, at the same sizes: the old scrape (three GROUP BYs over
``command_runs``, ``action_plans`` and ``incidents`` before every render), called the way
the old handler did. Also timed: the background read of open incidents and unfinished plans
(``Metrics.refresh``, every 30 s, never on the scrape path).
Target (issue 15): scrape cost flat in the number of stored samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.db.migrate import upgrade_async  # noqa: E402
from bot.db.models import ActionPlan, CommandRun, Incident  # noqa: E402
from bot.db.session import make_engine, make_sessionmaker  # noqa: E402
from bot.monitor.metrics import Metrics  # noqa: E402
from bot.monitor.samples import Sample  # noqa: E402

HOSTS = 200
COMMANDS = ("summary", "show", "log", "diagnose", "flush", "hold", "purge", "help")
OUTCOMES = ("ok", "ok", "ok", "denied", "failed")


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fill(path: Path, start: int, stop: int) -> float:
    """Rows ``start`` .. ``stop - 1`` of samples and runs (and incidents); seconds taken."""
    began = time.perf_counter()
    db = sqlite3.connect(path)
    db.executescript("PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;")
    last = stop - 1
    series = f"WITH RECURSIVE n(x) AS (SELECT {start} UNION ALL SELECT x+1 FROM n WHERE x<{last})"
    db.execute(
        f"""{series}
        INSERT INTO queue_samples (host, at, replica, ok, error, elapsed, total, active,
            incoming, deferred, hold, oldest_age, spool_kib, by_class)
        SELECT printf('h%03d', x % {HOSTS}), 1.7e9 + x * 0.3, 'bench', x % 10 != 0,
            CASE WHEN x % 10 = 0 THEN 'connect timed out' END, 0.05, x % 500, 3, 0,
            x % 497, 0, x % 3600, NULL,
            '{{"connection_refused": ' || (x % 300) || ', "greylisted": ' || (x % 197) || '}}'
        FROM n"""
    )
    db.execute(
        f"""{series}
        INSERT INTO command_runs (request_id, source, user_id, team_id, channel_id, command,
            text, target, started_at, finished_at, outcome, error)
        SELECT printf('%016x', x), 'slack', 'U0BENCH', 'T0BENCH', 'C0BENCH',
            {_pick("COMMANDS", COMMANDS)}, 'summary h' || (x % {HOSTS}),
            printf('h%03d', x % {HOSTS}), '2026-12-01 00:00:00.000000',
            '2026-12-01 00:00:01.000000', {_pick("OUTCOMES", OUTCOMES)}, NULL
        FROM n"""
    )
    db.execute(
        f"""{series}
        INSERT INTO incidents (host, kind, open_key, state, severity, value, peak, threshold,
            detail, version, opened_at, updated_at, resolved_at, created_by)
        SELECT printf('h%03d', x % {HOSTS}), 'deferred', NULL, 'resolved', 'warning',
            10, 150, 100, '{{}}', 3, 1.7e9 + x, 1.7e9 + x, 1.7e9 + x + 60, 'bench'
        FROM n WHERE x % 1000 = 0"""
    )
    db.commit()
    db.close()
    return time.perf_counter() - began


def _pick(_name: str, values: tuple[str, ...]) -> str:
    cases = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"CASE x % {len(values)} {cases} END"


def open_incidents(path: Path) -> None:
    db = sqlite3.connect(path)
    for n in range(5):
        host = f"h{n:03d}"
        db.execute(
            "INSERT INTO incidents (host, kind, open_key, state, severity, value, peak, "
            "threshold, detail, version, opened_at, updated_at, created_by) VALUES "
            "(?, 'deferred', ?, 'open', 'critical', 250, 250, 100, '{}', 1, 1.7e9, 1.7e9, 'b')",
            (host, f"{host}|deferred"),
        )
    db.commit()
    db.close()


def poll_results(metrics: Metrics, hosts: int) -> None:
    now = time.time()
    for n in range(hosts):
        host = f"h{n:03d}"
        if n % 10 == 9:
            metrics.observe(Sample(host, now, False, 3.0, "connect timed out"))
            continue
        metrics.observe(
            Sample(
                host,
                now,
                True,
                0.05 + n / 1000,
                queues={"active": 3, "incoming": 0, "deferred": n, "hold": 1},
                by_class={"connection_refused": n // 2, "greylisted": n - n // 2},
                oldest_age=60 * n,
            )
        )
    metrics.leased({f"h{n:03d}" for n in range(hosts)})


async def old_scrape(metrics: Metrics) -> bytes:
    """What the old handler did on every scrape: count in the database, then render."""
    assert metrics.sessions is not None
    async with metrics.sessions() as session:
        for a, b, *where in (
            (CommandRun.command, CommandRun.outcome),
            (ActionPlan.action, ActionPlan.status),
            (Incident.kind, Incident.severity, Incident.state == "open"),
        ):
            stmt = select(a, b, func.count()).where(*where).group_by(a, b)
            (await session.execute(stmt)).all()
    return metrics.render()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def measure(metrics: Metrics, url: str, scrapes: int, old: int) -> dict[str, float]:
    times: list[float] = []
    size = 0
    async with aiohttp.ClientSession() as http:
        for _ in range(10):  # warm-up
            async with http.get(url) as response:
                await response.read()
        for _ in range(scrapes):
            began = time.perf_counter()
            async with http.get(url) as response:
                body = await response.read()
            times.append(time.perf_counter() - began)
            size = len(body)
    refresh: list[float] = []
    for _ in range(5):
        began = time.perf_counter()
        await metrics.refresh()
        refresh.append(time.perf_counter() - began)
    olds: list[float] = []
    for _ in range(old):
        began = time.perf_counter()
        await old_scrape(metrics)
        olds.append(time.perf_counter() - began)
    return {
        "p50": statistics.median(times),
        "p99": p99(times),
        "bytes": size,
        "refresh": statistics.median(refresh),
        "old": statistics.median(olds),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--hosts", type=int, default=HOSTS)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--old-scrapes", type=int, default=5)
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        path = args.db or Path(tmp) / "metrics.sqlite3"
        if path.exists():
            os.unlink(path)
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_async(url)
        open_incidents(path)
        engine = make_engine(url)
        metrics = Metrics(make_sessionmaker(engine))
        poll_results(metrics, args.hosts)
        app = web.Application()
        app.router.add_get("/metrics", metrics.handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        scrape_url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        results: dict[int, dict[str, float]] = {}
        filled = 0
        try:
            for size in sizes:
                status(f"filling to {size:,} samples and runs ...")
                took = await asyncio.to_thread(fill, path, filled, size)
                filled = size
                status(f"  filled in {took:.1f} s ({path.stat().st_size / 2**30:.2f} GiB)")
                results[size] = await measure(metrics, scrape_url, args.scrapes, args.old_scrapes)
        finally:
            await runner.cleanup()
            await engine.dispose()
    report(results, args)
    return 0


def report(results: dict[int, dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"/metrics over HTTP on loopback, {args.hosts} hosts polled, {args.scrapes} scrapes "
        f"per size (old scrape: {args.old_scrapes})"
    )
    print("samples+runs   scrape p50 ms   p99 ms   bytes    refresh ms (bg)   old scrape ms")
    for size, r in results.items():
        print(
            f"{size:>12,}   {r['p50'] * 1000:13.2f}  {r['p99'] * 1000:7.2f}  {r['bytes']:>7,.0f}"
            f"    {r['refresh'] * 1000:14.2f}   {r['old'] * 1000:13.1f}"
        )
    sizes = list(results)
    if len(sizes) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        print(
            f"ratio {sizes[-1]:,}/{sizes[0]:,}: scrape p50 {big['p50'] / small['p50']:.2f}x, "
            f"p99 {big['p99'] / small['p99']:.2f}x (target: flat); background refresh "
            f"{big['refresh'] / small['refresh']:.2f}x; old scrape {big['old'] / small['old']:.2f}x"
        )
        print(f"at {sizes[-1]:,}: old scrape / new scrape (p50) = {big['old'] / big['p50']:.0f}x")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
