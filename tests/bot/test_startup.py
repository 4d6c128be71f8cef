"""Failing loudly: a real ``mailqbot serve`` against the fake Slack, each failure one line.

Each case starts the process with one thing wrong and checks it ends at once with exit
status 2 and exactly the line docs/ops/troubleshooting.md shows for it (so the page and the
code cannot drift apart), and no traceback. Then: stop signals end the process within
seconds, even while Socket Mode is reconnecting, and /healthz answers 503 while Slack is not
connected, the database does not answer, or this process's polls have stopped succeeding.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.startup import REQUIRED_SCOPES, database_url
from helpers.fakes import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
MAILQBOT = Path(sys.executable).parent / "mailqbot"
DOC = ROOT / "docs/ops/troubleshooting.md"
CLOSED = "127.0.0.1:9"  # nothing listens on the discard port of loopback here
GIVE_UP_DEFAULT = "120s"

# What each failure prints: the exact lines of docs/ops/troubleshooting.md's table.
LINES = {
    "bot token rejected": "mailqbot: Slack rejected SLACK_BOT_TOKEN (invalid_auth): set it to "
    "the app's Bot User OAuth Token (xoxb-..., under OAuth & Permissions) and start again.",
    "app token rejected": "mailqbot: Slack rejected SLACK_APP_TOKEN (invalid_auth): set it to "
    "an app-level token with connections:write (xapp-..., under Basic Information), or unset "
    "it for HTTP mode.",
    "scopes missing": "mailqbot: the bot token lacks the scope(s) files:write, "
    "usergroups:read: add them under OAuth & Permissions (app-manifest.yml lists them all), "
    "reinstall the app and start again.",
    "Slack unreachable": f"mailqbot: cannot reach Slack at http://{CLOSED}/api/ (connection "
    "refused): check the network, the proxy (HTTPS_PROXY) and SLACK_API_URL.",
    "Socket Mode lost": f"mailqbot: no Socket Mode connection to Slack for {GIVE_UP_DEFAULT}: "
    "giving up; check the network and https://status.slack.com, then start again (the "
    "service manager can restart it).",
    "DATABASE_URL unsupported": 'mailqbot: DATABASE_URL has scheme "mysql", which mailqbot '
    "cannot use: write postgresql://USER:PASSWORD@HOST:5432/DB (or postgres://) or "
    "sqlite:///PATH.",
    "database unreachable": f"mailqbot: cannot open the database at {CLOSED}/mailqbot "
    "(connection refused): check DATABASE_URL (host, port, user, password, database) and "
    "that the database server runs.",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path) -> Path:
    for name in ("known_hosts", "id_ed25519"):
        (directory / name).write_text("")
    config = directory / "mailqbot.toml"
    config.write_text(
        f'[ssh]\nknown_hosts = "{directory / "known_hosts"}"\n'
        f'private_key = "{directory / "id_ed25519"}"\n'
        '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\nport = 9\n'
        '[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n'
        "[monitor]\nenabled = false\n",
        encoding="utf-8",
    )
    return config


@asynccontextmanager
async def serve(
    tmp_path: Path, env: dict[str, str], port: int | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    base |= {"MAILQBOT_CONFIG": str(write_config(tmp_path)), "MAILQBOT_METRICS_PORT": "0"}
    base |= {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT),
        "serve",
        "--port",
        str(port or free_port()),
        env=base | env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def fails_with(tmp_path: Path, env: dict[str, str], timeout: float = 20) -> str:
    """Run serve to its end; the one line it printed last (exit 2, no traceback)."""
    async with serve(tmp_path, env) as process:
        assert process.stderr is not None
        async with asyncio.timeout(timeout):
            err = (await process.stderr.read()).decode()
            await process.wait()
    assert process.returncode == 2, err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def doc_lines() -> set[str]:
    """Each line the troubleshooting table shows (its ``mailqbot: ...`` cells)."""
    return set(re.findall(r"^\|[^|]+\| `(mailqbot: [^`]+)` \|", DOC.read_text(), re.M))


async def test_the_doc_shows_exactly_the_lines_the_tests_expect() -> None:
    assert doc_lines() == set(LINES.values())


async def test_required_scopes_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    assert set(REQUIRED_SCOPES) == set(manifest["oauth_config"]["scopes"]["bot"])


async def test_bot_token_rejected(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack:
        slack.fail_next("auth.test", status=200, error="invalid_auth")
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        assert await fails_with(tmp_path, env) == LINES["bot token rejected"]


async def test_app_token_rejected(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack:
        slack.fail_next("apps.connections.open", status=200, error="invalid_auth")
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        env["SLACK_APP_TOKEN"] = "xapp-revoked"
        assert await fails_with(tmp_path, env) == LINES["app token rejected"]


async def test_missing_scopes_named_at_start(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack:
        slack.scopes = [s for s in slack.scopes if s not in ("files:write", "usergroups:read")]
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        assert await fails_with(tmp_path, env) == LINES["scopes missing"]


async def test_slack_unreachable(tmp_path: Path, db_url: str) -> None:
    env = {"SLACK_API_URL": f"http://{CLOSED}/api/", "DATABASE_URL": db_url}
    assert await fails_with(tmp_path, env) == LINES["Slack unreachable"]


async def test_socket_mode_gives_up_after_bounded_retries(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack:
        slack.refuse_sockets = True
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        env |= {"SLACK_APP_TOKEN": "xapp-test", "MAILQBOT_SLACK_GIVE_UP": "2"}
        started = time.monotonic()
        line = await fails_with(tmp_path, env)
        assert line == LINES["Socket Mode lost"].replace(GIVE_UP_DEFAULT, "2s")
        assert time.monotonic() - started < 15
        assert slack.calls_to("link"), "it tried to connect before giving up"


async def test_unsupported_database_url(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "mysql://mailqbot:hunter2@db.example/mailqbot"}
    line = await fails_with(tmp_path, env)
    assert line == LINES["DATABASE_URL unsupported"]
    assert "hunter2" not in line


async def test_database_unreachable(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"postgresql://mailqbot:hunter2@{CLOSED}/mailqbot"}
    assert await fails_with(tmp_path, env) == LINES["database unreachable"]


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_database_refuses_the_login(tmp_path: Path, empty_db_url: str) -> None:
    """The table's row says "cannot be reached or refuses the login": the same line, with
    the server's reason in the parentheses."""
    host = empty_db_url.split("@", 1)[1].split("/", 1)[0]  # the test server's host:port
    env = {"DATABASE_URL": f"postgresql://nobody_here:hunter2@{host}/mailqbot"}
    line = await fails_with(tmp_path, env)
    expected = LINES["database unreachable"].replace(CLOSED, host)
    assert line == expected.replace("(connection refused)", '(role "nobody_here" does not exist)')
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///mailqbot.sqlite3", "sqlite+aiosqlite:///mailqbot.sqlite3"),
        ("sqlite:////var/lib/mailqbot/db", "sqlite+aiosqlite:////var/lib/mailqbot/db"),
    ],
)
def test_database_urls_as_people_write_them(given: str, used: str) -> None:
    assert database_url(given) == used


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("sqlite://", "SQLite needs a file"),
        ("mailqbot.sqlite3", "has no scheme"),
        ("postgresql+psycopg2://u@h/db", 'scheme "postgresql+psycopg2"'),
    ],
)
def test_other_database_urls_are_explained(given: str, says: str) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        database_url(given)


# -- stopping, and /healthz --------------------------------------------------------------------


async def health(port: int) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20):
        while True:
            assert process.returncode is None, "serve ended before it listened"
            try:
                await health(port)
                return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_ends_serve_within_seconds_while_reconnecting(
    tmp_path: Path, db_url: str, sig: signal.Signals
) -> None:
    async with FakeSlack() as slack:
        slack.refuse_sockets = True  # Socket Mode keeps retrying: the old hang
        port = free_port()
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        env |= {"SLACK_APP_TOKEN": "xapp-test"}
        async with serve(tmp_path, env, port) as process:
            await wait_listening(port, process)
            status, body = await health(port)
            assert status == 503
            assert body == {
                "ok": False, "database": True, "slack": False, "last_poll_age": None,
                "polling": True,
            }  # fmt: skip
            process.send_signal(sig)
            started = time.monotonic()
            async with asyncio.timeout(10):
                await process.wait()
            assert time.monotonic() - started < 5
            assert process.returncode == 0


async def test_healthz_is_ready_when_connected(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack:
        port = free_port()
        env = {"SLACK_API_URL": slack.api_url, "DATABASE_URL": db_url}
        env |= {"SLACK_APP_TOKEN": "xapp-test"}
        async with serve(tmp_path, env, port) as process:
            await wait_listening(port, process)
            async with asyncio.timeout(10):
                while (await health(port))[0] != 200:
                    await asyncio.sleep(0.2)
            status, body = await health(port)
            assert (status, body["database"], body["slack"]) == (200, True, True)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await process.wait()
            assert process.returncode == 0


# -- /healthz's readiness, reason by reason (bot.slack.serve.Health) ----------------------------


def _monitor(last_good: float | None, holds: set[str]) -> object:
    """What Health reads of the monitor: its config, its last good poll, its leases."""
    from types import SimpleNamespace

    from bot.monitor.config import MonitorSection

    config = MonitorSection.model_validate({"interval": "60s", "groups": {"slow": {}}})
    return SimpleNamespace(
        config=config, last_success=last_good, leases=SimpleNamespace(held=holds)
    )


async def _ask(database: bool, slack: bool, monitor: object = None, started: float = 0.0):  # type: ignore[no-untyped-def]
    import json

    from bot.slack.serve import Health

    async def db() -> bool:
        return database

    async def connected() -> bool:
        return slack

    health = Health(db, connected, monitor=monitor, started=started)  # type: ignore[arg-type]
    response = await health.handler(None)  # type: ignore[arg-type]
    return response.status, json.loads(response.text)


async def test_healthz_answers_503_when_the_database_does_not() -> None:
    assert await _ask(database=False, slack=True) == (503, {
        "ok": False, "database": False, "slack": True, "last_poll_age": None, "polling": True,
    })  # fmt: skip
    assert (await _ask(database=True, slack=True))[0] == 200


async def test_healthz_answers_503_when_this_process_stopped_polling_its_hosts() -> None:
    """Stale: no good poll for three of the longest intervals (+30 s) while holding hosts."""
    now = time.monotonic()
    limit = 3 * 60 + 30
    status, body = await _ask(True, True, _monitor(now - limit - 5, {"mx1"}))
    assert (status, body["ok"], body["polling"]) == (503, False, False)
    assert limit + 5 <= body["last_poll_age"] < limit + 15
    status, body = await _ask(True, True, _monitor(now - 5, {"mx1"}))
    assert (status, body["polling"]) == (200, True)
    assert 5 <= body["last_poll_age"] < 15
    # no good poll yet: counted from start-up; another replica holding every host: ready
    status, body = await _ask(True, True, _monitor(None, {"mx1"}), started=now - limit - 5)
    assert (status, body["polling"]) == (503, False)
    status, body = await _ask(True, True, _monitor(now - limit - 5, set()))
    assert (status, body["polling"]) == (200, True)
