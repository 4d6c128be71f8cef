"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, a clean Slack env."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.migrate import upgrade_async
from bot.db.session import make_engine, make_sessionmaker
from bot.settings import Settings
from bot.stores.audit_key import AuditTrail
from helpers.labqueue import LAB_DIR, ensure_test_queue

pytest_plugins = ["helpers.sshservers"]  # scripted SSH servers and hosts for them

PG_ADMIN = os.environ.get("MAILQBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def lab() -> dict[str, object]:
    """The lab, with its test queue: at least 100 deferred messages of every destination."""
    problem = ensure_test_queue()
    if problem:
        pytest.fail(problem)
    info: dict[str, object] = json.loads((LAB_DIR / "lab.json").read_text())
    return info


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real Slack credentials or proxies may leak into a test; the audit key and head
    checkpoint (the state directory) are the test's own."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "MAILQBOT_AUDIT_")) or name in {
            "DATABASE_URL",
            "MAILQBOT_CONFIG",
            "MAILQBOT_STATE_DIR",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MAILQBOT_STATE_DIR", str(tmp_path / "state"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "")
    return


async def _fresh_pg_database() -> str:
    name = f"mailqbot_t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@functools.cache
def postgresql_problem() -> str | None:
    """Why PostgreSQL cannot be used here (None: it can). ``scripts/test`` sets
    MAILQBOT_REQUIRE_PG=1, so CI fails instead of skipping; on a laptop without PostgreSQL
    its tests are skipped with this reason."""

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        await conn.close()

    try:  # a thread of its own: the caller may be inside the tests' event loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(probe())).result()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return (
            f"PostgreSQL is not reachable at {PG_ADMIN} ({exc.__class__.__name__}): "
            "set MAILQBOT_TEST_PG to a server where this user may create databases"
        )
    return None


@pytest.fixture
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the kind the test is parametrised with (default: both)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgresql" and (problem := postgresql_problem()):
        if os.environ.get("MAILQBOT_REQUIRE_PG") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'mailqbot.sqlite3'}"
        return
    name = await _fresh_pg_database()
    try:
        yield _pg_url(name)
    finally:
        await _drop_pg_database(name)


@pytest.fixture
async def db_url(empty_db_url: str) -> str:
    await upgrade_async(empty_db_url)
    return empty_db_url


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    """The audit key and head checkpoint the services of this test use."""
    return AuditTrail.from_settings(Settings())


@pytest.fixture
async def sessions(
    db_url: str, trail: AuditTrail
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine, trail)
    finally:
        await engine.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the database runs on SQLite and on PostgreSQL."""
    if "empty_db_url" in metafunc.fixturenames and not any(
        m.name == "parametrize" and "empty_db_url" in m.args[0]
        for m in metafunc.definition.iter_markers()
    ):
        metafunc.parametrize("empty_db_url", ["sqlite", "postgresql"], indirect=True)
