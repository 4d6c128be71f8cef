#!/usr/bin/env python3
"""Benchmark Slack's 3-second deadline: how fast ``mailqbot serve`` acknowledges slash
commands while the monitor polls a fleet in an outage.

    .venv/bin/python bench/bench_ack.py [--hosts 200] [--interval 5] [--concurrent 50]
                                        [--bursts 10] [--sqlite]

``mailqbot serve`` runs as its own process in HTTP mode, its Web API base pointed at a fake
Slack (``tests/helpers/fakes``) in this process. Every host is on 127.0.0.1 at a port nothing
listens on: each poll fails (connection refused), so the unreachable rule opens an incident
per host and alerts are posted, edited and threaded while the commands arrive.

Each burst sends ``--concurrent`` signed ``/mailq summary hNNN`` requests at once (Slack's
form body, ``X-Slack-Signature``; ``response_url`` on the fake Slack) from a driver process
of its own; the time measured is from sending a request to its HTTP response (the ack).
Bursts start once the outage is under way (alerts are being posted) and are a second
apart; a first burst, not measured, warms the bot's caches.

References in the same run: the same bursts against the same bot with monitoring off (no
polls, no alerts); and, during the outage, interleaved with the bot's bursts, the same
bursts against a floor process that only checks the signature and answers (what an ack
costs on this machine at that moment). Target (issue 15): p99 < 150 ms during the outage.
Needs PostgreSQL (``MAILQBOT_TEST_PG``, as the tests) or ``--sqlite``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from scratch_db import migrated_database  # noqa: E402
from slack_sdk.signature import SignatureVerifier  # noqa: E402

from helpers.fakes import FakeSlack  # noqa: E402
from helpers.fakes.signing import sign, slash_command_body  # noqa: E402

MAILQBOT = Path(sys.executable).parent / "mailqbot"
SECRET = "bench-ack-secret"
CHANNEL = "C0ALERTS"
USER = "U0BENCH"


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on (bound, then closed: connecting is refused)."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def config(directory: Path, hosts: int, interval: float, monitor: bool) -> Path:
    (directory / "known_hosts").write_text("", encoding="ascii")
    lines = [
        f'[ssh]\nknown_hosts = "{directory / "known_hosts"}"\nconnect_timeout = "3s"\n',
        *(
            f'[[hosts]]\nname = "h{n:03d}"\naddress = "127.0.0.1"\nport = {port}\n'
            for n, port in enumerate(free_ports(hosts))
        ),
        f'[slack]\nalert_channel = "{CHANNEL}"\n',
        '[access]\nteam_ids = ["T0LAB"]\n',
        f'[[access.grants]]\nrole = "viewer"\nmembers = ["{USER}"]\n',
        f'[monitor]\nenabled = {"true" if monitor else "false"}\ninterval = "{interval:g}s"\n',
    ]
    path = directory / ("monitor.toml" if monitor else "quiet.toml")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def database(use_sqlite: bool, directory: Path, tag: str) -> str:
    return await migrated_database(use_sqlite, directory, f"mailqbot_ack_{os.getpid()}_{tag}")


def free_port() -> int:
    return free_ports(1)[0]


async def start_bot(
    slack: FakeSlack, db_url: str, config_path: Path, directory: Path
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MAILQBOT_"))}
    env |= {
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": db_url,
        "MAILQBOT_CONFIG": str(config_path),
        "MAILQBOT_STATE_DIR": str(directory / f"state-{config_path.stem}"),
        "MAILQBOT_METRICS_PORT": "0",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }
    log = directory / f"serve-{config_path.stem}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(MAILQBOT), "serve", "--port", str(port), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            if process.returncode is not None:
                said = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise SystemExit(
                    f"mailqbot serve exited with {process.returncode}: " + "\n".join(said)
                )
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return process, url
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def one(http: aiohttp.ClientSession, url: str, response_base: str, n: int) -> float:
    body = slash_command_body(
        f"summary h{n % 200:03d}", user_id=USER, response_url=f"{response_base}{n}"
    )
    headers = sign(SECRET, body)
    began = time.perf_counter()
    async with http.post(f"{url}/slack/events", data=body, headers=headers) as response:
        await response.read()
        took = time.perf_counter() - began
        if response.status != 200:
            raise SystemExit(f"request {n}: HTTP {response.status}")
    return took


async def drive(url: str, response_base: str, count: int, concurrent: int) -> list[float]:
    """The bursts (in the driver process)."""
    times: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrent * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        # warm-up, not measured: the first requests fill the bot's caches (users, groups)
        await asyncio.gather(*(one(http, url, response_base, -1 - i) for i in range(concurrent)))
        await asyncio.sleep(1.0)
        for b in range(count):
            started = time.monotonic()
            batch = [one(http, url, response_base, b * concurrent + i) for i in range(concurrent)]
            times += await asyncio.gather(*batch)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return times


async def bursts(url: str, slack: FakeSlack, count: int, concurrent: int) -> list[float]:
    """Run the bursts from a process of their own: this one serves the fake Slack, whose
    work must not delay reading the acks."""
    driver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--drive", url, "--response-base", slack.response_url("r"),
        "--bursts", str(count), "--concurrent", str(concurrent),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await driver.communicate()
    if driver.returncode != 0:
        raise SystemExit(f"the driver failed ({driver.returncode})")
    return [float(x) for x in out.split()]


async def floor_server(port: int) -> None:
    """The floor: a process that only checks the signature and answers 200 (what any ack
    costs on this machine now: aiohttp, HMAC, the sockets), until stdin closes."""
    verifier = SignatureVerifier(SECRET)

    async def ack(request: web.Request) -> web.Response:
        body = await request.text()
        ok = verifier.is_valid_request(body, dict(request.headers))
        return web.Response(status=200 if ok else 401)

    app = web.Application()
    app.router.add_post("/slack/events", ack)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def roots(slack: FakeSlack) -> int:
    return sum(
        1
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == CHANNEL and not c.args.get("thread_ts")
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await process.wait()


def summary(name: str, times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    result = {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }
    print(
        f"{name:<28} n={len(times):4d}  p50 {result['p50'] * 1000:7.1f} ms  "
        f"p99 {result['p99'] * 1000:7.1f} ms  max {result['max'] * 1000:7.1f} ms"
    )
    return result


async def run(args: argparse.Namespace, directory: Path) -> None:
    floor_port = free_port()
    floor_server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--floor-server", str(floor_port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert floor_server.stdout is not None
    await floor_server.stdout.readline()  # READY
    floor_url = f"http://127.0.0.1:{floor_port}"
    try:
        await measure(args, directory, floor_url)
    finally:
        await stop(floor_server)


async def measure(args: argparse.Namespace, directory: Path, floor_url: str) -> None:
    async with FakeSlack() as slack:
        quiet_db = await database(args.sqlite, directory, "quiet")
        process, url = await start_bot(
            slack, quiet_db, config(directory, args.hosts, args.interval, False), directory
        )
        try:
            status("reference: monitoring off ...")
            quiet = await bursts(url, slack, args.bursts, args.concurrent)
        finally:
            await stop(process)
        outage_db = await database(args.sqlite, directory, "outage")
        process, url = await start_bot(
            slack, outage_db, config(directory, args.hosts, args.interval, True), directory
        )
        try:
            before = roots(slack)
            status(f"outage: {args.hosts} hosts failing; waiting for the alerts to start ...")
            async with asyncio.timeout(10 * args.interval + 30):
                # the hosts fail together: grouping gives them one incident (one root)
                while roots(slack) - before < 1:
                    await asyncio.sleep(0.2)
            posted = len(slack.calls_to("chat.postMessage")) + len(slack.calls_to("chat.update"))
            loud: list[float] = []
            floor: list[float] = []
            half = max(1, args.bursts // 2)
            for _ in range(2):  # interleaved: the bot, then the floor, twice
                loud += await bursts(url, slack, half, args.concurrent)
                floor += await bursts(floor_url, slack, half, args.concurrent)
            posted = (
                len(slack.calls_to("chat.postMessage"))
                + len(slack.calls_to("chat.update"))
                - posted
            )
            opened = roots(slack) - before
        finally:
            await stop(process)
    print(
        f"ack latency, {args.bursts} bursts of {args.concurrent} concurrent signed /mailq "
        f"requests, {'SQLite' if args.sqlite else 'PostgreSQL'}"
    )
    ref = summary("monitoring off (reference)", quiet)
    out = summary(f"outage: {args.hosts} hosts, {args.interval:g} s", loud)
    bare = summary("floor, during the outage", floor)
    print(f"during the outage: {opened} alert roots so far, {posted} posts/edits while measuring")
    print(
        f"ratio outage/floor (same conditions): p50 {out['p50'] / bare['p50']:.2f}x, "
        f"p99 {out['p99'] / bare['p99']:.2f}x"
    )
    print(
        f"ratio outage/reference: p50 {out['p50'] / ref['p50']:.2f}x, "
        f"p99 {out['p99'] / ref['p99']:.2f}x; target p99 < 150 ms: "
        f"{'met' if out['p99'] < 0.150 else 'MISSED'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # the driver process: this URL
    parser.add_argument("--response-base", help=argparse.SUPPRESS)
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)  # its port
    args = parser.parse_args()
    if args.floor_server:
        asyncio.run(floor_server(args.floor_server))
        return 0
    if args.drive:
        times = asyncio.run(drive(args.drive, args.response_base, args.bursts, args.concurrent))
        print(" ".join(f"{t:.6f}" for t in times))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
