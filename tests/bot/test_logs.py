"""Logs an on-call engineer can use: JSON lines, a level per logger, and every failed
command and refused request logged once with its host, request id and reason (the failed
poll is in tests/monitor/test_poll_logs.py)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot import logs
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.demo import demo_hosts
from bot.errors import ConfigError
from bot.inventory import Access, Grant, HostEntry, Inventory
from bot.settings import Settings

TEAM = "T0LAB"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="viewer", members=["U0VIEWER"]),
        Grant(role="viewer", members=["U0EDGE"], hosts=["edge"]),
    ],
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {n: logging.getLogger(n).level for n in ("bot", "asyncssh", "alembic")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in named.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_record_fields() -> None:
    out = io.StringIO()
    logs.setup(logging.INFO, json_lines=True, stream=out)
    logging.getLogger("bot.test").warning(
        "poll failed: %s", "mx1", extra={"host": "mx1", "request_id": "r-1", "reason": "down"}
    )
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["level"] == "warning"
    assert line["logger"] == "bot.test"
    assert line["message"] == "poll failed: mx1"
    assert (line["host"], line["request_id"], line["reason"]) == ("mx1", "r-1", "down")
    assert line["time"].endswith("+00:00")


@pytest.mark.usefixtures("restore_logging")
def test_levels_per_logger_debug_for_ours_without_the_drivers() -> None:
    out = io.StringIO()
    logs.setup(logging.INFO, levels="bot=debug,asyncssh=warning", stream=out)
    logging.getLogger("bot.remote.ssh").debug("ours at debug")
    logging.getLogger("asyncssh").info("driver noise")
    logging.getLogger("asyncssh").warning("driver warning")
    logging.getLogger("sqlalchemy.engine").debug("other debug")
    text = out.getvalue()
    assert "ours at debug" in text
    assert "driver warning" in text
    assert "driver noise" not in text
    assert "other debug" not in text


@pytest.mark.parametrize("bad", ["bot", "bot=loud", "=debug", "bot=debug,x"])
def test_malformed_levels_are_explained(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"is not LOGGER=LEVEL; write e\.g\. bot=debug"):
        logs.parse_levels(bad)


def test_the_environment_and_flags_choose_the_format(tmp_path: Path) -> None:
    """MAILQBOT_LOG_FORMAT=json makes the process log JSON lines (here: a failed start)."""
    env = {"PATH": "/usr/bin:/bin", "MAILQBOT_LOG_FORMAT": "json", "MAILQBOT_LOG_LEVELS": "x"}
    run = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "mailqbot: MAILQBOT_LOG_LEVELS: 'x' is not LOGGER=LEVEL; write e.g. "
        "bot=debug,asyncssh=warning (levels: debug, info, warning, error, critical)."
    )


def test_a_real_process_logs_json_lines_with_our_debug_and_not_the_drivers(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "MAILQBOT_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run(
        [sys.executable, "-m", "bot", "--log-json", "--log-levels", "bot=debug,asyncssh=warning",
         "console", "--demo", "summary mx1"],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert any(line["level"] == "debug" and line["logger"].startswith("bot.") for line in lines)
    assert not [line for line in lines if line["logger"].startswith("asyncssh")]


# -- failed commands and refused requests: logged once, with host, request id and reason -----


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    async with demo_hosts(tmp_path) as demo:
        config = demo.inventory.config
        dead = HostEntry(name="dead", address="127.0.0.1", port=9)  # nothing listens
        config = config.model_copy(update={"access": ACCESS, "hosts": [*config.hosts, dead]})
        async with open_services(Settings(DATABASE_URL=db_url), Inventory(config)) as opened:
            yield opened


def ask(text: str, user: str = "U0VIEWER") -> Request:
    return Request(source="slack", user_id=user, team_id=TEAM, channel_id="C1", text=text)


def warnings(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno >= logging.WARNING and request_id in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("text", "user", "says", "host", "reason"),
    [
        ("summary dead", "U0VIEWER", "command failed", "dead", "dead"),
        ("summary relay1", "U0EDGE", "request denied", "relay1", "You may not run `summary`"),
        ("summary nosuch", "U0VIEWER", "request refused", "nosuch", "Unknown host `nosuch`"),
        ("frobnicate mx1", "U0VIEWER", "request refused", "-", "frobnicate"),
    ],
)
async def test_each_failure_is_logged_once_with_host_request_id_and_reason(
    services: Services,
    caplog: pytest.LogCaptureFixture,
    text: str,
    user: str,
    says: str,
    host: str,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    request = ask(text, user)
    outcome = await handle(request, services)
    assert not outcome.ok
    found = warnings(caplog, request.request_id)
    assert len(found) == 1, [r.getMessage() for r in found]
    record = found[0]
    assert f"{says}: host={host} request_id={request.request_id} reason=" in record.getMessage()
    assert reason in record.reason  # type: ignore[attr-defined]
    assert record.host == host  # type: ignore[attr-defined]
    assert record.request_id == request.request_id  # type: ignore[attr-defined]


async def test_a_command_that_works_logs_no_warning(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    request = ask("summary mx1")
    assert (await handle(request, services)).ok
    assert warnings(caplog, request.request_id) == []
