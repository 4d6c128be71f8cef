"""Replicas that start together migrate once: ``mailqbot migrate`` holds a PostgreSQL
advisory lock (a file lock beside a SQLite database) around the upgrade."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import text

from bot.db.migrate import HEAD, head_revision, migration_lock
from bot.db.session import make_engine

REVISIONS = len(list((Path(__file__).parents[2] / "migrations" / "versions").glob("2*.py")))


async def _migrate(url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "-v", "migrate",
        env={**__import__("os").environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_two_processes_starting_together_migrate_once(empty_db_url: str) -> None:
    results = await asyncio.gather(_migrate(empty_db_url), _migrate(empty_db_url))
    assert [code for code, _out in results] == [0, 0], results
    logs = "".join(out for _code, out in results)
    # every revision ran exactly once, in one of the two processes
    assert logs.count("Running upgrade") == REVISIONS, logs
    assert sum("Running upgrade" in out for _code, out in results) == 1
    assert head_revision(empty_db_url) == HEAD
    engine = make_engine(empty_db_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert found == HEAD


async def test_the_lock_admits_one_holder_at_a_time(empty_db_url: str) -> None:
    order: list[str] = []

    async def hold(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with migration_lock(empty_db_url):
            order.append(f"{name} in")
            await asyncio.sleep(0.3)
            order.append(f"{name} out")

    await asyncio.gather(hold("a", 0), hold("b", 0.05))
    assert order == ["a in", "a out", "b in", "b out"]
