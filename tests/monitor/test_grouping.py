"""Alerts at fleet scale: 200 simulated hosts over real SSH, Slack through the fake Web API.

- All 200 unreachable at once, over five intervals: one group incident ("Unreachable: 200
  hosts"), at most 3 roots and 10 posts in the alert channel, every host in the group's
  list; recovery in waves shrinks the root's list in place; one resolved notice at the end.
  On PostgreSQL with two monitors sharing the hosts through leases, and on SQLite with one.
- The relay refuses the SASL login on 50 hosts while 3 others' queues grow: one group
  incident for the relay's reason class (the 50 hosts' own queue incidents fold into it),
  and 3 incidents of their own, each with its thread.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.db.models import Incident
from bot.monitor.scheduler import Monitor
from helpers.fakes import FakeSlack
from helpers.monitoring import CHANNEL, notes, roots, running, wait_until
from helpers.simhosts import Farm, farm

HOSTS = 200
INTERVAL = 2.0
OUTAGE = f"""[monitor]
interval = "{INTERVAL:g}s"
jitter = 0
tick = "400ms"
chart = false
[monitor.rules]
deferred = {{ warning = 100, critical = 1000, clear = 80 }}
unreachable = {{ warning = 2, critical = 4, clear = 1 }}
"""


def channel_posts(slack: FakeSlack) -> int:
    """Every message and file the bot put in the alert channel (threads included)."""
    messages = [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL]
    files = [f for f in slack.files.values() if f.channel == CHANNEL]
    return len(messages) + len(files)


def root_text(slack: FakeSlack, ts: str) -> str:
    return str(slack.messages[(CHANNEL, ts)]["text"])


def hosts_shown(slack: FakeSlack, ts: str) -> list[int]:
    """The host counts the root showed, edit after edit."""
    counts = []
    for call in slack.calls_to("chat.update"):
        if call.args.get("ts") == ts:
            found = re.search(r"Unreachable: (\d+) hosts?", call.args["text"])
            if found:
                counts.append(int(found[1]))
    return counts


def listed(slack: FakeSlack, ts: str) -> set[str]:
    """The hosts in the newest host list file in the thread."""
    files = [f for f in slack.files.values() if f.thread_ts == ts and f.content]
    if not files:
        return set()
    return set(re.findall(r"^(h\d{3})\t", (files[-1].content or b"").decode(), re.M))


async def all_polled(world: Farm) -> None:
    await wait_until(lambda: all(world.polls.get(h) for h in world.servers), 60)


async def rows(monitor: Monitor) -> list[Incident]:
    for attempt in range(5):  # SQLite: the monitor may hold the write lock for a while
        try:
            async with monitor.services.sessions() as session:
                stmt = select(Incident).order_by(Incident.id)
                return list((await session.scalars(stmt)).all())
        except OperationalError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("empty_db_url", "replicas"), [("postgresql", 2), ("sqlite", 1)], indirect=["empty_db_url"]
)
async def test_two_hundred_hosts_down_make_one_incident(
    tmp_path: Path, db_url: str, replicas: int
) -> None:
    async with FakeSlack() as slack, farm(tmp_path, HOSTS) as world, AsyncExitStack() as stack:
        monitors = [
            await stack.enter_async_context(running(world, slack, db_url, f"r{n}", OUTAGE))
            for n in range(replicas)
        ]
        await all_polled(world)
        if replicas > 1:  # both share the hosts
            await wait_until(lambda: all(m.leases.held for m in monitors), 30)

        world.down |= set(world.servers)  # all at once
        # five intervals: every host polled (and failing) five times; on a loaded machine
        # polls may come late, so count them rather than the seconds
        await wait_until(lambda: min(world.refused.get(h, 0) for h in world.servers) >= 5, 60)
        assert len(roots(slack)) <= 3
        (root,) = roots(slack)
        ts = slack.messages_in(CHANNEL)[0]["ts"]
        # four failures in a row make it critical (a loaded machine may poll a little late)
        await wait_until(lambda: root_text(slack, ts) == "CRITICAL Unreachable: 200 hosts", 20)
        assert root.args["text"].startswith("WARNING Unreachable: ")
        # the root lists 15 hosts; the whole list is a file in the thread
        await wait_until(lambda: listed(slack, ts) == set(world.servers), 10)
        incidents = await rows(monitors[0])
        (group,) = [r for r in incidents if r.group_key]
        members = [r for r in incidents if r.group_id == group.id]
        assert sorted(r.host for r in members) == sorted(world.servers)
        assert all(r.root_ts is None for r in members)  # no host has a root of its own

        hosts = sorted(world.servers)
        for wave in range(4):  # recover in waves of 50: the root's list shrinks in place
            world.down -= set(hosts[wave * 50 : (wave + 1) * 50])
            left = HOSTS - 50 * (wave + 1)
            if left:
                await wait_until(
                    lambda n=left: f"Unreachable: {n} hosts" in root_text(slack, ts), 20
                )  # type: ignore[misc]
        await wait_until(lambda: any("Resolved" in n for n in notes(slack, ts)), 20)
        await asyncio.sleep(2 * INTERVAL)  # nothing more comes
        await wait_until(lambda: "RESOLVED" in root_text(slack, ts), 10)

    shown = hosts_shown(slack, ts)
    assert 200 in shown
    assert {150, 100, 50} <= set(shown)
    after = shown[shown.index(200) :]
    assert after == sorted(after, reverse=True)  # only ever shrinking once all were in
    assert len(roots(slack)) == 1
    assert sum("Resolved" in n for n in notes(slack, ts)) == 1
    assert channel_posts(slack) <= 10
    posted = [c.args["text"][:60] for c in slack.calls_to("chat.postMessage")]
    posted += [f.filename for f in slack.files.values()]
    print(f"\n{replicas} replica(s): {channel_posts(slack)} posts {posted}, "
          f"{len(slack.calls_to('chat.update'))} edits")  # fmt: skip


RELAY = f"""[monitor]
interval = "{INTERVAL:g}s"
jitter = 0
tick = "400ms"
chart = true
[monitor.budget]
per_minute = 120
burst = 10
[monitor.rules]
deferred = {{ warning = 100, critical = 1000, clear = 80 }}
reason_spike = {{ warning = 120, critical = 10000, clear = 60 }}
growth_window = "{3 * INTERVAL:g}s"
unreachable = {{ warning = 2, critical = 4, clear = 1 }}
"""


async def test_relay_failing_on_fifty_is_one_group_and_growing_queues_their_own(
    tmp_path: Path, db_url: str
) -> None:
    async with FakeSlack() as slack, farm(tmp_path, HOSTS) as world:  # noqa: SIM117
        async with running(world, slack, db_url, "r0", RELAY) as monitor:
            # every host has a baseline for the spike rule: 4 polls span 3 intervals
            await wait_until(
                lambda: min(len(world.polls.get(h, [])) for h in world.servers) >= 4, 60
            )
            growing = ["h010", "h020", "h030"]
            relay = [f"h{n:03}" for n in range(100, 150)]
            for host in relay:
                world.relay_failing[host] = 150
            for _step in range(4):  # +40 an interval: no class spikes, the size crosses 100
                for host in growing:
                    world.deferred[host] += 40
                await asyncio.sleep(INTERVAL)
            await wait_until(lambda: len(roots(slack)) >= 4, 20)
            await asyncio.sleep(2 * INTERVAL)
            by_text = {c.args["text"].split(":")[0]: c for c in roots(slack)}
            assert len(roots(slack)) == 4, list(by_text)
            tops = [m for m in slack.messages_in(CHANNEL) if not m.get("thread_ts")]
            group_ts = next(m["ts"] for m in tops if "Spike in" in m["text"])
            await wait_until(lambda: ": 50 hosts" in root_text(slack, group_ts), 15)
            assert "Relay / SASL authentication failure" in root_text(slack, group_ts)
            incidents = await rows(monitor)
            await wait_until(
                lambda: (
                    len([f for f in slack.files.values() if f.filename.startswith("trend-")]) >= 3
                ),
                20,
            )

    (group,) = [r for r in incidents if r.group_key]
    assert (group.kind, group.reason_class) == ("spike:auth_failure", "auth_failure")
    in_group = [r for r in incidents if r.group_id == group.id]
    assert {r.host for r in in_group} == set(relay)
    # the relay hosts' queues crossed 100 too: those incidents folded into the group
    assert {r.host for r in in_group if r.kind == "deferred"} == set(relay)
    own = [r for r in incidents if r.group_id is None and not r.group_key]
    assert sorted(r.host for r in own) == growing
    assert all(r.kind == "deferred" for r in own)
    threads = {r.root_ts for r in own}
    assert None not in threads
    assert len(threads) == 3
    charts = {f.thread_ts for f in slack.files.values() if f.filename.startswith("trend-")}
    assert threads <= charts  # each has its own thread
