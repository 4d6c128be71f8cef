"""Every benchmark that needs no lab still runs: each at a tiny size, its report read.

The benchmarks are run by hand and their figures go to bench/README.md; nothing here times
anything. What this catches is a benchmark left behind by a change elsewhere (a config rule
it does not follow, a message it waits for that no longer comes), which would otherwise be
found only when someone needs the figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (script and tiny arguments, a line its report always prints)
RUNS = [
    (
        ["bench_fleet.py", "--floor", "--hosts", "5", "--messages", "10", "--repeat", "1"],
        "summary / bare-SSH floor, 5 hosts:",
    ),
    (["bench_hostile.py", "--messages", "200", "--repeat", "1"], "verdicts: hostile summary"),
    (["bench_cpu.py", "--messages", "1000", "--repeat", "1"], "orjson.loads floor:"),
    (
        ["bench_cpu.py", "--fleet", "--hosts", "5", "--host-messages", "20", "--repeat", "1"],
        "orjson.loads floor:",
    ),
    (
        [
            "bench_metrics.py",
            "--sizes",
            "1000",
            "--hosts",
            "5",
            "--scrapes",
            "2",
            "--old-scrapes",
            "1",
        ],
        "1,000",
    ),
    (
        ["bench_retention.py", "--db", "sqlite", "--hosts", "2", "--days", "1"],
        "steady state of the default policy",
    ),
    (["bench_memory.py", "--sizes", "1000,2000"], "rss ratio 2,000/1,000:"),
    (["bench_startup.py", "--runs", "1"], 'mailqbot console "help"'),
    (
        [
            "bench_monitor.py",
            "--sqlite",
            "--hosts",
            "10",
            "--interval",
            "2",
            "--intervals",
            "2",
            "--hot",
            "2",
        ],
        "alerts: 2/2",
    ),
    (
        [
            "bench_ack.py",
            "--sqlite",
            "--hosts",
            "5",
            "--bursts",
            "2",
            "--concurrent",
            "3",
            "--interval",
            "2",
        ],
        "target p99 < 150 ms:",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), RUNS, ids=[" ".join(r[0][:2]) for r in RUNS])
def test_the_benchmark_runs(argv: list[str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MAILQBOT_"))}
    ran = subprocess.run(
        [sys.executable, str(ROOT / "bench" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert expected in ran.stdout, ran.stdout[-2000:]
