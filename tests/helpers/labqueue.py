"""The lab's queue as the lab tests expect it: read with Postfix's own tool, reset when allowed.

`tests/lab/lab.sh up` leaves a new lab with an empty queue; the tests that read queue
contents (summaries, lists, diagnose verdicts that need greylisted or relay-auth mail) want
the test state of 300 deferred messages of every destination. The ``lab`` fixture in
``tests/conftest.py`` makes sure of it, once per session, before the first of them runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path("/var/lib/mailqbot-lab")
ROOT = Path(__file__).resolve().parents[2]
TEST_QUEUE = 300
MIN_DEFERRED = 100
MAX_QUEUE = 5_000  # a queue left large by a benchmark is reset, so tests stay quick


def postqueue_json() -> list[dict[str, object]]:
    """The lab host's queue, read directly with Postfix's own tool (the oracle)."""
    out = subprocess.run(
        ["/usr/sbin/postqueue", "-j"], check=True, capture_output=True, timeout=120
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


BUSY = ("maildrop", "incoming", "active")


def settled_queue(timeout: float = 180) -> list[dict[str, object]]:
    """The lab's queue once nothing is waiting or being delivered, on two reads in a row.

    A count taken while Postfix retries a batch (moved from deferred to active for a few
    seconds) is low by that batch; a test that sets thresholds from the count would then see
    the batch come back as growth it did not cause.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        queue = postqueue_json()
        quiet = quiet + 1 if not any(m["queue_name"] in BUSY for m in queue) else 0
        if quiet >= 2:
            return queue
        if time.monotonic() >= deadline:
            busy = sum(1 for m in queue if m["queue_name"] in BUSY)
            raise TimeoutError(
                f"the lab queue still has {busy} messages in flight after {timeout:.0f} s"
            )
        time.sleep(0.5)


def ensure_test_queue() -> str | None:
    """Refill the lab queue to its test state if it is too small or too large.

    Returns why the tests cannot run (the lab is down, or the queue is off and this run may
    not reset it: only ``scripts/test`` sets ``MAILQBOT_LAB_RESET=1``), or None when ready.
    """
    if not (LAB_DIR / "lab.json").exists():
        return "the lab is not up: run `bash tests/lab/lab.sh up` as root"
    queue = postqueue_json()
    deferred = sum(1 for m in queue if m["queue_name"] == "deferred")
    if deferred >= MIN_DEFERRED and len(queue) <= MAX_QUEUE:
        return None
    if os.environ.get("MAILQBOT_LAB_RESET") != "1":
        return (
            f"the lab queue holds {len(queue):,} messages ({deferred:,} deferred); the tests "
            f"want {TEST_QUEUE}. Run `scripts/test` (it resets the queue) or "
            f"`.venv/bin/python tests/lab/fill.py {TEST_QUEUE} --clear` when nobody else uses "
            "the lab."
        )
    subprocess.run(
        [sys.executable, str(ROOT / "tests/lab/fill.py"), str(TEST_QUEUE), "--clear"],
        check=True,
        timeout=600,
    )
    return None
