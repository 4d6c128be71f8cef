"""Reading a hostile listing leaves the event loop free for other requests."""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import AsyncIterator

import orjson

from bot.demo.ssh import Reply
from bot.postfix import reasons
from bot.postfix.reader import read_host
from bot.postfix.summary_brief import BriefSummaryBuilder
from bot.remote.audited import Remote

PIECES = ["a.", "1.", "a[", "a.b[", "-.", "a@", "1.1.1.1.", "<a@"]
NOW = 1_800_000_000
COUNT = 1500


def hostile_listing(count: int) -> bytes:
    """``count`` deferred messages, each with a delay reason holding a 2 KB word of its own."""
    lines = []
    for n in range(count):
        tag = "".join(string.ascii_lowercase[int(d)] for d in f"{n:06d}")
        word = (tag + PIECES[n % len(PIECES)] * 2048)[:2048]
        reason = f"host mx.d{n % 7}.test[192.0.2.1] said: 450 4.7.1 {word} (in reply to RCPT)"
        record = {
            "queue_name": "deferred",
            "queue_id": f"{0x100000000 + n:X}",
            "arrival_time": NOW - n,
            "message_size": 1000,
            "sender": "s@shop.example",
            "recipients": [{"address": f"u{n}@d{n % 7}.test", "delay_reason": reason}],
        }
        lines.append(orjson.dumps(record) + b"\n")
    return b"".join(lines)


async def longest_step(work: asyncio.Future[object]) -> float:
    """The most CPU this thread spent between two turns of a ticker while ``work`` ran: how
    long the loop was held. CPU time, so other processes on the machine do not count."""
    longest, last = 0.0, time.thread_time()
    while not work.done():
        await asyncio.sleep(0.001)
        now = time.thread_time()
        longest, last = max(longest, now - last), now
    await work
    return longest


async def test_a_hostile_listing_never_holds_the_loop(make_server, host_for, executor):
    """1,500 reasons with 2 KB words of their own. Analysing them takes about 0.2 ms each
    (20 ms with the former patterns), and used to happen in one step of the loop when the
    summary was built: 0.3 s here (30 s)."""
    data = hostile_listing(COUNT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    async def handler(command_line: str, stdin: bytes) -> Reply:
        if "postconf" in command_line:
            return Reply(0, b"3.7.11\n5d\n5d\n/var/spool/postfix\n")
        return Reply(0, chunks())

    server = await make_server(handler)
    host = host_for(server)
    for builder in (None, BriefSummaryBuilder(NOW, max_keys=100)):
        for cached in vars(reasons).values():
            if hasattr(cached, "cache_clear"):
                cached.cache_clear()
        remote = Remote.reader(executor)
        work = asyncio.ensure_future(read_host(remote, host, NOW, builder=builder))
        held = await longest_step(work)
        summary = work.result().summary
        assert summary.total_messages == COUNT
        assert sum(group.recipients for group in summary.deferred_by_class) == COUNT
        assert held < 0.1, f"the loop was held for {held * 1000:.0f} ms"
