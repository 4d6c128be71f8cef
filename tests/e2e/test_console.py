"""`mailqbot console --demo`: a newcomer's first run, as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MAILQBOT = Path(sys.executable).parent / "mailqbot"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAILQBOT), "console", "--demo", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_one_shot_summary_is_readable() -> None:
    result = run("summary mx1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Queue on mx1 at ")
    assert "1,840 messages" in out
    assert "deferred because" in out
    assert "Greylisted" in out
    assert "Traceback" not in result.stderr


def test_lines_from_stdin_run_in_turn_and_errors_say_what_next() -> None:
    result = run(stdin="help\nsummary nosuch\n")
    assert result.returncode == 1
    assert "/mailq summary HOST" in result.stdout
    assert "Unknown host `nosuch`. Known hosts: mx1, mx2, relay1." in result.stdout
