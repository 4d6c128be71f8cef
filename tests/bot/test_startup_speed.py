"""The command line loads only what a command uses (mailqbot issue 14, item 5): the heavy
libraries stay unimported where they are not needed. Timing is ``bench/bench_startup.py``'s;
this checks the cause, which a loaded machine cannot blur."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("alembic", "asyncssh", "slack_bolt", "slack_sdk", "matplotlib", "dns", "aiohttp")
PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded(args: list[str], env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    (tmp_path / "known_hosts").write_text("")
    config = tmp_path / "mailqbot.toml"
    config.write_text(
        f'[ssh]\nknown_hosts = "{tmp_path / "known_hosts"}"\n'
        '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
    )
    return {**os.environ, "MAILQBOT_CONFIG": str(config), "DATABASE_URL": db_url}


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_help_and_check_config_load_no_database_and_no_templates(env: dict[str, str]) -> None:
    for args in (["--help"], ["check-config"]):
        top = _top(loaded(args, env))
        assert top.isdisjoint({*HEAVY, "sqlalchemy", "jinja2", "pydantic_settings"}), args
    assert "pydantic" not in _top(loaded(["--help"], env))


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_console_help_loads_neither_alembic_nor_ssh_nor_slack(env: dict[str, str]) -> None:
    modules = loaded(["console", "help"], env)
    assert "commands.help" in modules  # it did run
    assert _top(modules).isdisjoint(HEAVY)
    assert "sqlalchemy.dialects.postgresql" not in modules


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_the_console_script_flushes_its_output_and_keeps_the_exit_code(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``mailqbot`` (``bot.entry``) ends with ``os._exit``: nothing written may be lost, and
    the exit status is ``main``'s."""
    entry = [sys.executable, "-m", "bot"]
    done = subprocess.run([*entry, "console", "help"], env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.rstrip().endswith("Hosts: mx1")
    missing = tmp_path / "nope.toml"
    done = subprocess.run(
        [*entry, "check-config", str(missing)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith("mailqbot: ")
