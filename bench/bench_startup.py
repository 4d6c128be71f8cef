#!/usr/bin/env python3
"""How long the command line takes to answer: whole-process wall time, and what it imports.

    .venv/bin/python bench/bench_startup.py [--runs 7] [--top 15] [--source DIR]

In a temporary directory with a one-host, one-grant config and a migrated SQLite database, runs
``mailqbot --help``, ``mailqbot check-config`` and ``mailqbot console help`` ``--runs``
times each as new processes (the console script, as a user would) and prints the best and
median wall time against the target (0.5 s, mailqbot issue 14). Then runs each once under
``python -X importtime`` and prints the imports that cost most (cumulative, outermost
first) and whether alembic, jinja2, slack_bolt, asyncssh, matplotlib or the PostgreSQL
dialect were loaded at all. ``--source DIR`` runs another checkout's code (e.g.
``git archive main | tar -x -C /tmp/base``) with this virtualenv, for a before/after.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = """
import sys
try:
    from bot.entry import entry  # the console script (leaves without interpreter teardown)
except ImportError:  # a checkout from before bot/entry.py
    from bot.cli import main
    sys.exit(main())
entry()
"""
MAILQBOT = [sys.executable, "-c", ENTRY]
TARGET = 0.5
COMMANDS = {
    "--help": ["--help"],
    "check-config": ["check-config"],
    'console "help"': ["console", "help"],
}
WATCHED = (
    "alembic",
    "jinja2",
    "slack_bolt",
    "slack_sdk",
    "asyncssh",
    "matplotlib",
    "dns",
    "sqlalchemy",
    "sqlalchemy.dialects.postgresql",
)


def environment(tmp: Path, source: Path | None) -> dict[str, str]:
    (tmp / "known_hosts").write_text("")
    config = tmp / "mailqbot.toml"
    config.write_text(
        f'[ssh]\nknown_hosts = "{tmp / "known_hosts"}"\n'
        '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
        # check-config refuses a config without grants (nobody could use the bot)
        '[[access.grants]]\nrole = "viewer"\nmembers = ["U0AAAA"]\n'
    )
    env = dict(os.environ)
    env.update(
        MAILQBOT_CONFIG=str(config),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'mailqbot.sqlite3'}",
        MAILQBOT_STATE_DIR=str(tmp / "state"),
    )
    if source is not None:
        env["PYTHONPATH"] = str(source)
    # As installed (pip compiles bytecode at install): with PYTHONDONTWRITEBYTECODE set,
    # every run would compile the bot's modules from source, which no installation does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([*MAILQBOT, "migrate"], env=env, check=True, capture_output=True, cwd=tmp)
    for argv in COMMANDS.values():  # a first run writes the bytecode, as pip would
        subprocess.run([*MAILQBOT, *argv], env=env, capture_output=True, check=False, cwd=tmp)
    return env


def _workdir(env: dict[str, str]) -> str:
    """The temporary directory, not the repository: with ``-c`` the working directory
    comes first on sys.path, and ``--source`` must win."""
    return str(Path(env["MAILQBOT_STATE_DIR"]).parent)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``mailqbot ARGV`` process; CPU (user + system) is what
    a loaded machine inflates least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*MAILQBOT, *argv], env=env, capture_output=True, check=False, cwd=_workdir(env)
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"mailqbot {' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def imports(argv: list[str], env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of every import, from ``-X importtime``."""
    code = f"import sys; sys.argv = ['mailqbot', *{argv!r}]; from bot.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=_workdir(env),
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(cumulative), depth, name.strip()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--source", type=Path, help="run this checkout's bot/ instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp), args.source)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        head = f"{'':<24} {'wall best':>9} {'median':>7} {'CPU median':>10}"
        print(f"{head}  target {TARGET} s (wall median)")
        for label, argv in COMMANDS.items():
            runs = [timed(argv, env) for _ in range(args.runs)]
            walls, cpus = [w for w, _c in runs], [c for _w, c in runs]
            median = statistics.median(walls)
            verdict = "met" if median < TARGET else "MISSED"
            print(f"mailqbot {label:<15} {min(walls):>8.3f}s {median:>6.3f}s "
                  f"{statistics.median(cpus):>9.3f}s  {verdict}")  # fmt: skip
        print(f"\n(bare interpreter: {timed_python(env):.3f} s)")
        for label, argv in COMMANDS.items():
            rows = imports(argv, env)
            total = sum(c for c, d, _n in rows if d == 0) / 1e6
            print(f"\nmailqbot {label}: imports {total:.3f} s in all; the costliest:")
            outer = sorted((r for r in rows if r[1] <= 2), reverse=True)[: args.top]
            for cumulative, depth, name in outer:
                print(f"  {cumulative / 1000:>7.1f} ms  {'  ' * depth}{name}")
            loaded = {n for _c, _d, n in rows}
            print("  loaded: " + ", ".join(w for w in WATCHED if w in loaded))
            print("  not loaded: " + ", ".join(w for w in WATCHED if w not in loaded))


def timed_python(env: dict[str, str]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        best = min(best, time.perf_counter() - started)
    return best


if __name__ == "__main__":
    main()
