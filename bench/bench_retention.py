#!/usr/bin/env python3
"""Database size with retention: 200 hosts polled every 60 s for 30 days, pruned daily.

    .venv/bin/python bench/bench_retention.py [--db sqlite|postgresql] [--hosts 200]
                                              [--days 30] [--step 60]

Each simulated day writes every host's polls in one server-side INSERT
(``tests/helpers/samplefill.py``), then runs ``bot.stores.retention.run`` as of the day's end with
the default ``[retention]`` (raw 48 h, 10-minute buckets to 30 days, hourly to 400 days).
Printed: rows and bytes of ``queue_samples`` after day 1 (nothing pruned yet: the cost of
one day of raw polls) and after the last day, the time each prune took, and the steady
state the default policy reaches after 400 days (rows from the tiers, bytes at the measured
bytes per row). SQLite's size is the pages in use (``page_count - freelist_count``; the
file keeps freed pages for reuse, so its size is printed too); PostgreSQL's is
``pg_total_relation_size`` (table, TOAST and indexes). On PostgreSQL the bench runs
``VACUUM queue_samples`` after each day's prune: autovacuum does that work within a real
day, but a simulated day lasts seconds, and without it every day's inserts would go to new
pages while the deleted rows' space waited (the table would grow as if nothing were pruned).
Needs PostgreSQL (``MAILQBOT_TEST_PG``, as the tests) for ``--db postgresql``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from bot.db.migrate import upgrade_async  # noqa: E402
from bot.db.session import make_engine, make_sessionmaker  # noqa: E402
from bot.retention import RetentionSection  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.stores import retention  # noqa: E402
from bot.stores.audit_key import AuditTrail  # noqa: E402
from helpers.samplefill import count, fill  # noqa: E402

DAY = 86400.0
START = 1_800_000_000.0
PG_ADMIN = os.environ.get("MAILQBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MiB = 1024 * 1024


async def vacuum(sessions: async_sessionmaker[AsyncSession]) -> None:
    """``VACUUM queue_samples`` (PostgreSQL): the deleted rows' space becomes reusable."""
    async with sessions() as session:
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute("VACUUM queue_samples")  # type: ignore[union-attr]


async def size(sessions: async_sessionmaker[AsyncSession], path: Path | None) -> tuple[int, int]:
    """(bytes in use by queue_samples or the whole SQLite file's used pages, file bytes)."""
    async with sessions() as session:
        if path is None:
            await vacuum(sessions)
            used = (
                await session.execute(text("SELECT pg_total_relation_size('queue_samples')"))
            ).scalar_one()
            return int(used), int(used)
        pages = (await session.execute(text("PRAGMA page_count"))).scalar_one()
        free = (await session.execute(text("PRAGMA freelist_count"))).scalar_one()
        page = (await session.execute(text("PRAGMA page_size"))).scalar_one()
    wal = path.with_name(path.name + "-wal")
    return int((pages - free) * page), path.stat().st_size + (
        wal.stat().st_size if wal.exists() else 0
    )


async def simulate(url: str, path: Path | None, hosts: int, days: int, step: float) -> None:
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine, AuditTrail.from_settings(Settings()))
    policy = RetentionSection()
    prunes: list[float] = []
    try:
        for day in range(days):
            await fill(sessions, hosts, START + day * DAY, DAY, step)
            if day == 0:
                rows1 = await count(sessions, "queue_samples")
                used1, _ = await size(sessions, path)
                per_row = used1 / rows1
                print(f"after day 1, nothing pruned: {rows1:,} rows, {used1 / MiB:.1f} MiB "
                      f"({per_row:.0f} bytes/row with indexes)")  # fmt: skip
            started = time.perf_counter()
            await retention.run(sessions, policy, "bench", START + (day + 1) * DAY)
            prunes.append(time.perf_counter() - started)
            if path is None:  # what autovacuum does in a real day, done at once here
                await vacuum(sessions)
            if (day + 1) % 5 == 0 and day + 1 < days:
                rows_now = await count(sessions, "queue_samples")
                used_now, _ = await size(sessions, path)
                print(f"  day {day + 1:>3}: {rows_now:>9,} rows, {used_now / MiB:7.1f} MiB")
        rows = await count(sessions, "queue_samples")
        used, file_bytes = await size(sessions, path)
    finally:
        await engine.dispose()
    polls = int(hosts * days * DAY / step)
    print(f"after {days} days ({polls:,} polls), pruned daily: {rows:,} rows, "
          f"{used / MiB:.1f} MiB in use (file + WAL {file_bytes / MiB:.1f} MiB)")  # fmt: skip
    year = polls * per_row * 365 / days / 2**30
    print(f"without retention it would be {polls:,} rows, ~{polls * per_row / MiB:.0f} MiB "
          f"(day 1's bytes/row); a year ~{year:.1f} GiB")  # fmt: skip
    later = sorted(prunes[2:]) or prunes
    print(f"prune per day: median {statistics.median(later):.2f} s, "
          f"max {max(later):.2f} s (first two days: nothing to do, {prunes[0]:.3f} s)")  # fmt: skip
    per_day = DAY / step
    steady = hosts * (
        policy.raw_seconds / DAY * per_day
        + (policy.fine_seconds - policy.raw_seconds) / DAY * 144
        + (policy.max_seconds - policy.fine_seconds) / DAY * 24
    )
    print(f"steady state of the default policy (400 days): {steady:,.0f} rows, "
          f"~{steady * used / rows / MiB:.0f} MiB at this run's bytes/row")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MAILQBOT_STATE_DIR"] = str(Path(tmp) / "state")
        print(f"{args.db}: {args.hosts} hosts, a poll every {args.step:.0f} s, {args.days} days")
        if args.db == "sqlite":
            path = Path(tmp) / "bench.sqlite3"
            await simulate(f"sqlite+aiosqlite:///{path}", path, args.hosts, args.days, args.step)
            return
        name = f"mailqbot_bench_{os.getpid()}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            await simulate(f"{base}/{name}", None, args.hosts, args.days, args.step)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
