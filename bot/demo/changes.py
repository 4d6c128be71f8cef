"""What ``postsuper`` and ``postqueue -f/-i`` do to a demo host's queue, with Postfix's words.

A demo queue is a list of ``postqueue -j`` lines. ``postsuper`` changes the messages whose
IDs come on standard input, only in the named queue, and reports each one and a count on
stderr exactly as Postfix 3.7 does (captured in tests/data/postsuper-*.lab.txt).
"""

from __future__ import annotations

import orjson

_WORDS = {
    "-d": ("removed", "Deleted"),
    "-h": ("placed on hold", "Placed on hold"),
    "-H": ("released from hold", "Released from hold"),
    "-r": ("requeued", "Requeued"),
}
_MOVES = {"-h": "hold", "-H": "deferred", "-r": "incoming"}


def postsuper(lines: list[bytes], argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    """``postsuper FLAG - QUEUE`` on ``lines`` (changed in place)."""
    if len(argv) != 4 or argv[1] not in _WORDS or argv[2] != "-":
        return 1, b"", b"postsuper: fatal: usage: postsuper [-d|-h|-H|-r] - queue\n"
    flag, queue = argv[1], argv[3]
    wanted = set(stdin.decode("ascii", "replace").split())
    done: list[str] = []
    kept: list[bytes] = []
    for line in lines:
        record = orjson.loads(line)
        if record["queue_id"] not in wanted or record["queue_name"] != queue:
            kept.append(line)
            continue
        done.append(record["queue_id"])
        if flag != "-d":
            record["queue_name"] = _MOVES[flag]
            kept.append(orjson.dumps(record) + b"\n")
    lines[:] = kept
    each, total = _WORDS[flag]
    report = "".join(f"postsuper: {queue_id}: {each}\n" for queue_id in done)
    plural = "" if len(done) == 1 else "s"
    return 0, b"", f"{report}postsuper: {total}: {len(done)} message{plural}\n".encode()
