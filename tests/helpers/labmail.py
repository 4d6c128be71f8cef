"""Put a few marked messages into the lab's deferred queue, and take them out again.

Tests that change the queue work only on their own messages: each batch has a sender no
other test uses, so the shared lab queue is left as it was.
"""

from __future__ import annotations

import json
import secrets
import smtplib
import subprocess
import time

POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"


def new_sender() -> str:
    return f"act-{secrets.token_hex(4)}@actions.lab.test"


def queue() -> list[dict[str, object]]:
    out = subprocess.run([POSTQUEUE, "-j"], check=True, capture_output=True, timeout=120).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ids_from(sender: str, queue_name: str | None = None) -> set[str]:
    return {
        str(m["queue_id"])
        for m in queue()
        if m["sender"] == sender and (queue_name is None or m["queue_name"] == queue_name)
    }


def inject(sender: str, count: int, domain: str = "refused.test") -> set[str]:
    """Send ``count`` messages from ``sender`` and wait until all of them are deferred."""
    before = ids_from(sender)
    with smtplib.SMTP("127.0.0.1", 25, local_hostname="tests.lab.test", timeout=30) as smtp:
        for i in range(count):
            body = f"Subject: action test {i}\r\nFrom: <{sender}>\r\n\r\nbody {i}\r\n"
            smtp.sendmail(sender, [f"user{i}@{domain}"], body.encode())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deferred = ids_from(sender, "deferred") - before
        if len(deferred) >= count and ids_from(sender) - before == deferred:
            return deferred
        time.sleep(0.3)
    raise AssertionError(f"{count} messages from {sender} were not all deferred within 60 s")


def remove(ids: set[str]) -> None:
    """Delete the test's own leftovers (as root, with Postfix's own tool)."""
    if ids:
        data = "".join(f"{i}\n" for i in sorted(ids)).encode()
        subprocess.run([POSTSUPER, "-d", "-"], input=data, check=True, capture_output=True)
