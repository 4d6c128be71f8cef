"""Onboarding on the real lab: a host unknown to the bot, `mailqbot hosts scan --accept`, then
`mailqbot doctor` says ready; and doctor names each sudo rule a host lacks, exactly.

The lab's sshd takes three logins with one key: ``mailqbot`` (deploy/sudoers.mailqbot as
shipped), ``mailqbot-fc`` (the forced-command wrapper, ``sudo = false``) and
``mailqbot-partial`` (deploy/sudoers.mailqbot without the rules for ``postsuper -d - active``
and du on the spool; tests/lab/lab.sh). The known_hosts file starts empty, as on a new bot.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab", "partial_user")]

MAILQBOT = Path(sys.executable).parent / "mailqbot"
LAB_STATE = Path("/var/lib/mailqbot-lab")


@pytest.fixture(scope="module")
def partial_user() -> None:
    """The lab as this tree's lab.sh sets it up (an older lab.sh drops the third login)."""
    sshd = (LAB_STATE / "sshd_config").read_text()
    allowed = next(line for line in sshd.splitlines() if line.startswith("AllowUsers"))
    if (
        "mailqbot-partial" not in allowed.split()
        or not Path("/etc/sudoers.d/mailqbot-partial").exists()
    ):
        pytest.fail(
            "the lab has no mailqbot-partial login: run `bash tests/lab/lab.sh up` from this tree"
        )


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "mailqbot.toml"
    config.write_text(f"""
[ssh]
user = "mailqbot"
port = 2222
private_key = "{LAB_STATE / "id_ed25519"}"
known_hosts = "{tmp_path / "known_hosts"}"
connect_timeout = "5s"
login_timeout = "5s"

[[hosts]]
name = "lab"
address = "127.0.0.1"
groups = ["fleet"]

[[hosts]]
name = "lab-fc"
address = "127.0.0.1"
user = "mailqbot-fc"
sudo = false
groups = ["fleet"]

[[hosts]]
name = "lab-partial"
address = "127.0.0.1"
user = "mailqbot-partial"
""")
    return config


def mailqbot(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAILQBOT), *argv], capture_output=True, text=True, timeout=120, check=False
    )


def row(out: str, host: str) -> str:
    return next(line for line in out.splitlines() if line.split()[:1] == [host])


def test_a_fresh_host_goes_from_unknown_to_ready(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    known_hosts = tmp_path / "known_hosts"

    before = mailqbot("doctor", "fleet", "--config", str(config))
    assert before.returncode == 1, before.stderr
    for host in ("lab", "lab-fc"):
        assert "key unknown" in row(before.stdout, host)
        assert f"{host}: login: `mailqbot hosts scan {host}`" in before.stdout

    shown = mailqbot("hosts", "scan", "fleet", "--config", str(config))
    assert shown.returncode == 1
    assert not known_hosts.exists()
    keygen = subprocess.run(
        ["ssh-keygen", "-lf", str(LAB_STATE / "ssh_host_ed25519_key.pub")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    fingerprint = keygen.stdout.split()[1]
    assert fingerprint in row(shown.stdout, "lab")

    accepted = mailqbot("hosts", "scan", "fleet", "--accept", "--config", str(config))
    assert accepted.returncode == 0, accepted.stdout
    pinned = (LAB_STATE / "known_hosts").read_text().split()[1:3]
    assert known_hosts.read_text().split() == ["[127.0.0.1]:2222", *pinned]

    after = mailqbot("doctor", "fleet", "--config", str(config))
    assert after.returncode == 0, after.stdout + after.stderr
    lab, fc = row(after.stdout, "lab"), row(after.stdout, "lab-fc")
    assert lab.split()[1] == "ready"
    assert fc.split()[1] == "ready"
    for part in ("3.7", "UTC+00:00", "/var/spool/postfix", "/var/log/postfix.log", "present"):
        assert part in lab
        assert part in fc
    assert "all 20 rules" in lab
    assert "sudo = false: root commands run" in fc
    assert "2 of 2 host(s) ready" in after.stdout


def test_doctor_names_each_missing_sudo_rule(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert mailqbot("hosts", "scan", "all", "--accept", "--config", str(config)).returncode == 0
    ran = mailqbot("doctor", "all", "--config", str(config))
    assert ran.returncode == 1
    assert row(ran.stdout, "lab").split()[1] == "ready"
    partial = row(ran.stdout, "lab-partial")
    assert partial.split()[1] == "FAIL"
    assert "2 of 20 missing" in partial
    [step] = [line for line in ran.stdout.splitlines() if "lab-partial: sudo:" in line]
    assert re.findall(r"`(/[^`]*)`", step) == [
        "/usr/sbin/postsuper -d - active",
        "/usr/bin/du -sk /var/spool/postfix/deferred",
    ]
    assert "2 of 3 host(s) ready" in ran.stdout
