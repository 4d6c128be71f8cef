#!/usr/bin/env python3
"""Benchmark an approved purge of N IDs against `postsuper -d ALL deferred` on the same queue.

    .venv/bin/python bench/bench_purge.py [--size 50000] [--repeat 2] [--config PATH]
        [--host lab] [--keep]

Each round fills the lab queue with N deferred messages (``tests/lab/fill.py N --clear``) and
times the bot's execution of an approved plan covering all of them: claim, the queue listed
again, every planned ID checked, ``sudo -n postsuper -d - deferred`` with the IDs on standard
input, Postfix's report parsed and the result stored with its audit event. It then refills
the queue with N messages and times ``sudo -n postsuper -d ALL deferred`` over the same kind
of SSH connection (the executor). Both must leave the deferred queue empty. Making the plan
(one listing) is timed too, for information. The lab queue is restored to 300 messages at
the end unless ``--keep``. Needs the lab to itself: other lab tests fail while it runs.

Target (mailqbot issue): approved purge / postsuper ALL <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.actions import approvals  # noqa: E402
from bot.actions.select import parse_selection, select  # noqa: E402
from bot.app.runtime import open_services  # noqa: E402
from bot.app.services import Services  # noqa: E402
from bot.context import (  # noqa: E402
    Context,
    Identity,
    Request,
)
from bot.db.migrate import upgrade_async  # noqa: E402
from bot.remote.command import RemoteCommand  # noqa: E402
from bot.settings import Settings  # noqa: E402

DEFAULT_CONFIG = "/var/lib/mailqbot-lab/mailqbot.toml"
FILL = REPO / "tests" / "lab" / "fill.py"
TARGET = 1.5


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fill(size: int) -> None:
    log(f"filling the lab queue with {size:,} deferred messages…")
    subprocess.run([sys.executable, str(FILL), str(size), "--clear"], check=True,
                   stdout=subprocess.DEVNULL, timeout=3600)  # fmt: skip


def deferred_count() -> int:
    out = subprocess.run(["/usr/sbin/postqueue", "-j"], capture_output=True, check=True).stdout
    return out.count(b'"queue_name": "deferred"')


def context(services: Services, user: str) -> Context:
    return Context(services, Request("console", user, "bench"), Identity("console", user, None))


async def bot_round(services: Services, host_name: str) -> tuple[float, float, int]:
    host = services.inventory.get(host_name)
    asker = context(services, "bench:requester")
    selection = parse_selection("purge", ["ALL", "deferred", "why=benchmark"], "bench")
    started = time.perf_counter()
    items, preview = await select(asker, host, "purge", selection)
    plan = await approvals.create(asker, host, "purge", "purge_all", selection, items, preview)
    made = time.perf_counter() - started
    approver = context(services, "bench:approver")
    if (await approvals.decide(approver, plan.id, "approve")).status != "approved":
        raise SystemExit("the plan was not approved")
    started = time.perf_counter()
    done = await approvals.run_approved(approver, host, plan.id)
    ran = time.perf_counter() - started
    if done.result is None:
        raise SystemExit(f"the plan did not run: {done.status}")
    return made, ran, int(done.result["changed"])


async def all_round(services: Services, host_name: str) -> float:
    host = services.inventory.get(host_name)
    command = RemoteCommand(
        argv=("/usr/sbin/postsuper", "-d", "ALL", "deferred"), sudo=True, remote_timeout=600
    )
    await services.executor.run(host, RemoteCommand(argv=("true",)))  # warm connection
    started = time.perf_counter()
    await services.executor.run(host, command)
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="mailqbot-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        await upgrade_async(url)
        settings = Settings(DATABASE_URL=url, MAILQBOT_CONFIG=args.config,
                            MAILQBOT_REPLICA_ID="bench")  # fmt: skip
        bot_times, all_times, make_times = [], [], []
        async with open_services(settings) as services:
            for round_no in range(1, args.repeat + 1):
                fill(args.size)
                queued = deferred_count()
                made, ran, changed = await bot_round(services, args.host)
                if changed != queued or deferred_count() != 0:
                    raise SystemExit(
                        f"the purge deleted {changed:,} of {queued:,}: not a fair round"
                    )
                log(
                    f"round {round_no}: plan of {queued:,} made in {made:.2f} s, run in {ran:.2f} s"
                )
                fill(args.size)
                queued_b = deferred_count()
                took = await all_round(services, args.host)
                if deferred_count() != 0:
                    raise SystemExit("postsuper -d ALL deferred left messages behind")
                log(f"round {round_no}: postsuper -d ALL deferred ({queued_b:,}) in {took:.2f} s")
                bot_times.append(ran)
                all_times.append(took)
                make_times.append(made)
    if not args.keep:
        fill(300)
    bot_t, all_t = statistics.median(bot_times), statistics.median(all_times)
    ratio = bot_t / all_t
    print(f"queue: {args.size:,} deferred messages on {args.host}, {args.repeat} round(s), medians")
    print(
        f"{'making the plan (listing, preview, store)':48} {statistics.median(make_times):8.2f} s"
    )
    print(f"{'approved purge (relist, check, postsuper -d -)':48} {bot_t:8.2f} s")
    print(f"{'postsuper -d ALL deferred':48} {all_t:8.2f} s")
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"ratio approved purge / postsuper ALL: {ratio:.2f}x (target <= {TARGET}x) {verdict}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--host", default="lab")
    parser.add_argument("--keep", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
