#!/usr/bin/env python3
"""How long the command line takes to answer: whole-process wall time, and what it imports.

    .venv/bin/python bench/bench_startup.py [--runs 7] [--top 15]

In a temporary directory with a one-host config and a migrated SQLite database, runs
``mailqbot --help``, ``mailqbot check-config`` and ``mailqbot console help`` ``--runs``
times each as new processes (the console script, as a user would) and prints the best and
median wall time against the target (0.5 s, mailqbot issue 14). Then runs each once under
``python -X importtime`` and prints the imports that cost most (cumulative, outermost
first) and whether alembic, jinja2, slack_bolt, asyncssh, matplotlib or the PostgreSQL
dialect were loaded at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAILQBOT = BIN / "mailqbot"
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


def environment(tmp: Path) -> dict[str, str]:
    (tmp / "known_hosts").write_text("")
    config = tmp / "mailqbot.toml"
    config.write_text(
        f'[ssh]\nknown_hosts = "{tmp / "known_hosts"}"\n'
        '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
    )
    env = dict(os.environ)
    env.update(
        MAILQBOT_CONFIG=str(config),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'mailqbot.sqlite3'}",
        MAILQBOT_STATE_DIR=str(tmp / "state"),
    )
    subprocess.run([MAILQBOT, "migrate"], env=env, check=True, capture_output=True)
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([MAILQBOT, *argv], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"mailqbot {' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def imports(argv: list[str], env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of every import, from ``-X importtime``."""
    code = f"import sys; sys.argv = ['mailqbot', *{argv!r}]; from bot.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp))
        print(f"{'command':<18} {'best':>7} {'median':>7}  target {TARGET} s")
        for label, argv in COMMANDS.items():
            times = [timed(argv, env) for _ in range(args.runs)]
            best, median = min(times), statistics.median(times)
            verdict = "met" if median < TARGET else "MISSED"
            print(f"mailqbot {label:<9} {best:>6.3f}s {median:>6.3f}s  {verdict}")
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
