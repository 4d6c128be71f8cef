"""A large `postqueue -j` listing made from a real lab capture, for offline CPU measurements.

``bench/data/postqueue-j.lab300.jsonl`` is `postqueue -j` of the lab queue as
``tests/lab/fill.py`` leaves it (captured over SSH, read only). ``synthetic_listing(n)``
repeats its deferred messages with fresh queue IDs, ages spread over two days (every qshape
column) and the recipients' local-part numbers varied, so the delay reasons that quote the
recipient (greylisting, full mailboxes) vary as they do in a real 100k lab queue (about
800 distinct raw reasons). The bytes per message (~420) and recipients per message (~1.5)
are the lab's. Records are printed as postqueue prints them (``", "`` and ``": "``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

CAPTURE = Path(__file__).resolve().parent / "data" / "postqueue-j.lab300.jsonl"
# The two timing-out lab domains were still in delivery when the capture was taken; their
# reasons as the lab prints them (tests/data/postqueue-j.lab.jsonl).
_TIMEOUTS = {
    "blackhole.test": "connect to mx.blackhole.test[127.0.0.4]:25: Connection timed out",
    "silent.test": "conversation with mx.silent.test[127.0.0.5] timed out while receiving the "
    "initial server greeting",
}
_NUMBERED = re.compile(r"^([A-Za-z.]+?)\d+@")


def _templates() -> list[dict[str, Any]]:
    """Every captured message as a deferred one; a recipient caught in delivery (active)
    gets a reason another recipient of its domain has in the capture."""
    records = [json.loads(line) for line in CAPTURE.read_text().splitlines() if line]
    reasons: dict[str, str] = dict(_TIMEOUTS)
    for record in records:
        for item in record["recipients"]:
            if item.get("delay_reason"):
                reasons.setdefault(item["address"].rpartition("@")[2], item["delay_reason"])
    for record in records:
        record["queue_name"] = "deferred"
        for item in record["recipients"]:
            domain = item["address"].rpartition("@")[2]
            if not item.get("delay_reason") and domain in reasons:
                item["delay_reason"] = reasons[domain]
    return records


def _vary(record: dict[str, Any], rng: random.Random, n: int, now: int) -> dict[str, Any]:
    recipients = []
    for item in record["recipients"]:
        address = item["address"]
        new = _NUMBERED.sub(lambda m: f"{m.group(1)}{rng.randrange(50)}@", address)
        recipient = {"address": new}
        if "delay_reason" in item:
            recipient["delay_reason"] = item["delay_reason"].replace(f"<{address}>", f"<{new}>")
        recipients.append(recipient)
    copy = dict(record)
    copy["queue_id"] = f"{0x100000000 + n:X}"
    copy["arrival_time"] = now - int(rng.expovariate(1 / 36000))
    copy["recipients"] = recipients
    return copy


def synthetic_listing(count: int, now: int, seed: int = 1) -> bytes:
    """``count`` lines of `postqueue -j`, as of ``now`` (see the module doc)."""
    rng = random.Random(seed)
    templates = _templates()
    lines = [
        json.dumps(_vary(templates[rng.randrange(len(templates))], rng, n, now))
        for n in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()
