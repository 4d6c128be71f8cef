"""deploy/: the files an operator installs, shipped in the wheel and loadable by the bot.

``bot/deploy`` is a symbolic link to ``../deploy``, so the files live once, at the top of the
source tree where operators look, and are package data of ``bot`` (``importlib.resources``:
``files("bot") / "deploy" / NAME``) in an editable install and in the built wheel alike.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from bot.inventory import Inventory, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMES = {
    "mailqbot.toml",
    "mailqbot.env",
    "mailqbot.service",
    "mailqbot-wrapper",
    "sudoers.mailqbot",
    "sudoers.mailqbot-wrapper",
}


def test_deploy_holds_the_operator_files() -> None:
    assert {p.name for p in DEPLOY.iterdir()} == NAMES
    assert (DEPLOY / "mailqbot-wrapper").stat().st_mode & stat.S_IXUSR
    assert (ROOT / "bot" / "deploy").resolve() == DEPLOY


def test_the_files_load_as_package_resources() -> None:
    resources = files("bot") / "deploy"
    for name in NAMES:
        assert (resources / name).read_bytes() == (DEPLOY / name).read_bytes()


def test_the_wheel_carries_the_files(tmp_path: Path) -> None:
    """setuptools' build_py (what goes into the wheel) copies deploy/ into bot/deploy/."""
    pytest.importorskip("setuptools", reason="building needs setuptools in the venv")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("bot", "commands", "migrations", "deploy"):
        shutil.copytree(ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    build = tmp_path / "build"
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(build)],
        cwd=source, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    shipped = build / "bot" / "deploy"
    assert not shipped.is_symlink()
    assert {p.name for p in shipped.iterdir()} == NAMES
    for name in NAMES:
        assert (shipped / name).read_bytes() == (DEPLOY / name).read_bytes()
    assert (shipped / "mailqbot-wrapper").stat().st_mode & stat.S_IXUSR


def test_the_sample_config_is_valid_and_shows_both_host_setups() -> None:
    config = load_config(DEPLOY / "mailqbot.toml")
    hosts = {host.name: host for host in map(Inventory(config).get, Inventory(config).names)}
    assert hosts["mx1"].sudo, "the sudoers host (deploy/sudoers.mailqbot)"
    assert not hosts["relay1"].sudo, "the wrapper host (deploy/mailqbot-wrapper)"


def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted key paths of a TOML table; arrays of tables count as one table."""
    found: set[str] = set()
    for key, value in table.items():
        path = f"{prefix}{key}"
        found.add(path)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                found |= keys(item, f"{path}[].")
        elif isinstance(value, dict):
            found |= keys(value, f"{path}.")
    return found


def test_the_sample_config_shows_every_setting_the_lab_uses() -> None:
    """The lab's config (tests/lab/mailqbot.toml) is the sample with lab values: no setting
    proven on the lab may be missing from what operators copy."""
    sample = tomllib.loads((DEPLOY / "mailqbot.toml").read_text())
    lab = tomllib.loads((ROOT / "tests" / "lab" / "mailqbot.toml").read_text())
    assert keys(lab) - keys(sample) == set()


@pytest.mark.parametrize("name", ["sudoers.mailqbot", "sudoers.mailqbot-wrapper"])
def test_sudoers_files_pass_visudo(name: str) -> None:
    if shutil.which("visudo") is None:
        pytest.skip("visudo is not installed (apt-get install sudo)")
    ran = subprocess.run(
        ["visudo", "-cf", str(DEPLOY / name)], capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
