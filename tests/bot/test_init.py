"""``mailqbot init DIR``, ``--version`` and the LICENSE: what a new operator starts from."""

from __future__ import annotations

import stat
import tomllib
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pytest

from bot import cli, init_files

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_every_file_from_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "etc-mailqbot"
    assert cli.main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in target.iterdir()} == set(init_files.FILES)
    for name, (mode, _, where) in init_files.FILES.items():
        written = target / name
        assert written.read_bytes() == (files("bot") / "deploy" / name).read_bytes()
        assert written.read_bytes() == (ROOT / "deploy" / name).read_bytes()
        assert stat.S_IMODE(written.stat().st_mode) == mode
        assert name in out
        assert where in out
    assert f"mailqbot check-config {target / 'mailqbot.toml'}" in out


def test_the_sample_config_passes_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["init", str(tmp_path)]) == 0
    capsys.readouterr()
    config = tmp_path / "mailqbot.toml"
    # As written, it names the key and known_hosts it expects, and says how to make them.
    assert cli.main(["check-config", str(config)]) == 2
    said = capsys.readouterr().err
    assert "ssh-keygen -t ed25519 -f /etc/mailqbot/id_ed25519" in said
    assert "mailqbot hosts scan all --accept" in said
    # Once they exist (here under tmp_path), the sample passes as it is.
    config.write_text(config.read_text().replace("/etc/mailqbot/", f"{tmp_path}/"))
    (tmp_path / "id_ed25519").write_text("key\n")
    (tmp_path / "known_hosts").write_text("")
    assert cli.main(["check-config", str(config)]) == 0
    assert ": OK: 2 host(s) (mx1, relay1); groups: edge" in capsys.readouterr().out


def test_init_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mailqbot.toml"
    config.write_text("# mine\n")
    assert cli.main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already has mailqbot.toml: nothing written" in err
    assert "--force" in err
    assert [p.name for p in tmp_path.iterdir()] == ["mailqbot.toml"]
    assert config.read_text() == "# mine\n"
    assert cli.main(["init", str(tmp_path), "--force"]) == 0  # read-only sudoers files too
    assert cli.main(["init", str(tmp_path), "--force"]) == 0
    assert config.read_bytes() == (ROOT / "deploy" / "mailqbot.toml").read_bytes()


def test_the_unit_runs_the_installed_commands() -> None:
    unit = (ROOT / "deploy" / "mailqbot.service").read_text()
    lines = [line for line in unit.splitlines() if line and not line.startswith("#")]
    assert "ExecStart=/opt/mailqbot/bin/mailqbot serve" in lines
    assert "ExecStartPre=/opt/mailqbot/bin/mailqbot check-config" in lines
    assert "EnvironmentFile=/etc/mailqbot/mailqbot.env" in lines
    env = (ROOT / "deploy" / "mailqbot.env").read_text()
    names = {line.split("=")[0].lstrip("# ") for line in env.splitlines() if "=" in line}
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "DATABASE_URL"} <= names


def test_version_and_license(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"mailqbot {version('mailqbot')}\n"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
