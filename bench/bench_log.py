#!/usr/bin/env python3
"""Benchmark ``/mailq log HOST since=24h`` against ``pflogsumm`` on the same >= 1 GiB mail log.

    .venv/bin/python bench/bench_log.py [--size-gib 1.1] [--days 7] [--repeat 3] [--keep]

1. Generates a realistic Postfix log (syslog stamps, host time zone UTC like the lab) of
   ``--size-gib`` GiB spanning ``--days`` days up to now into /var/tmp/mailqbot-bench-log/
   (root-owned directory 0755, file 0644), unless it is already there from a ``--keep`` run.
   Message lifecycles are simulated in time order: smtpd connect/client/disconnect, cleanup,
   qmgr from=/removed, deliveries that are sent, bounced or deferred with the lab's real
   delay reasons, retries with Postfix's backoff (300 s doubling to 4000 s, half of them as
   ``postfix/error`` "delivery temporarily suspended"); mail for dnsfail.test never gets
   through and expires after 5 days; anvil noise.
2. The bot reads it exactly as it reads the lab's log: a host ``bench`` = the lab's sshd at
   127.0.0.1:2222 (pinned key, user mailqbot), through ``mailqbot``'s real pipeline (parse,
   authorise, run, render, audit into a SQLite database). Two differences, both stated in the
   output: the host entry has ``sudo = false`` (the file is world-readable, so no sudoers rule
   for a path under /var/tmp is needed: such a rule would let anyone who can create that
   path first point it at /etc/shadow), and the log path comes from the bench instead of
   ``postconf -h maillog_file`` (the same two detection commands still run). The cost of
   ``sudo -n`` per remote command is measured separately on the lab's real log and printed.
3. Each measured run is a fresh process: ``bot`` (``/mailq log bench since=24h``), ``bot``
   with ``since=31d`` (the whole file: the parser's worst case, and memory must stay flat),
   and ``pflogsumm FILE`` (run locally on the same file, as its users run it). Wall time is
   taken by this parent from spawn to exit; peak memory is each child's ``ru_maxrss`` from
   ``wait4``. The bot child also reports the time inside the command (without interpreter
   start-up). Runs are interleaved ``--repeat`` times after one warm-up read of the file, so
   both sides read it from the page cache. Target: pflogsumm / bot >= 3.

The generated file is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_DIR = Path("/var/tmp/mailqbot-bench-log")
BENCH_LOG = BENCH_DIR / "postfix.log"
LAB_CONFIG = Path("/var/lib/mailqbot-lab/mailqbot.toml")
PFLOGSUMM = "/usr/sbin/pflogsumm"
TARGET_RATIO = 3.0

# (weight, domain, mx, ip, dsn, reason): the lab's destinations and Postfix's own wording.
DEFERRALS = [
    (3, "greylist.test", "mx.greylist.test", "127.0.0.2", "4.7.1",
     "host {mx}[{ip}] said: 450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, please "
     "try again in 300 seconds (in reply to RCPT TO command)"),
    (2, "refused.test", "mx.refused.test", "127.0.0.3", "4.4.1",
     "connect to {mx}[{ip}]:25: Connection refused"),
    (3, "blackhole.test", "mx.blackhole.test", "127.0.0.4", "4.4.1",
     "connect to {mx}[{ip}]:25: Connection timed out"),
    (1, "silent.test", "mx.silent.test", "127.0.0.5", "4.4.2",
     "conversation with {mx}[{ip}] timed out while receiving the initial server greeting"),
    (2, "busy.test", "mx.busy.test", "127.0.0.6", "4.7.0",
     "host {mx}[{ip}] refused to talk to me: 421 4.7.0 {mx} Error: too many connections from "
     "127.0.0.1; try again later"),
    (1, "notls.test", "mx.notls.test", "127.0.0.7", "4.7.4",
     "TLS is required, but was not offered by host {mx}[{ip}]"),
    (1, "authfail.test", "mx.authfail.test", "127.0.0.8", "4.7.8",
     "SASL authentication failed; server {mx}[{ip}] said: 535 5.7.8 Error: authentication "
     "failed: authentication failure"),
    (1, "full.test", "mx.full.test", "127.0.0.9", "4.2.2",
     "host {mx}[{ip}] said: 452 4.2.2 <{rcpt}>: Recipient address rejected: Mailbox full (in "
     "reply to RCPT TO command)"),
    (1, "dropdata.test", "mx.dropdata.test", "127.0.0.10", "4.4.2",
     "lost connection with {mx}[{ip}] while sending end of data -- message may be sent more "
     "than once"),
    (1, "dnsfail.test", "", "", "4.4.3",
     "Host or domain name not found. Name service error for name={domain} type=MX: Host not "
     "found, try again"),
]  # fmt: skip
GOOD_DOMAINS = ["example.com", "example.net", "example.org", "mail.example", "corp.example"]
SENDERS = ["billing@shop.test", "noreply@app.test", "alerts@ops.test", "", "news@lists.test"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
MAX_LIFETIME = 5 * 86400  # maximal_queue_lifetime: then "status=expired"
DEAD = len(DEFERRALS) - 1  # dnsfail.test never recovers: its mail expires after 5 days


# -- generating the log ---------------------------------------------------------------------


class Stamp:
    """``Nov 28 11:09:51`` for an epoch, cached per second."""

    def __init__(self) -> None:
        self.last = -1
        self.text = ""

    def __call__(self, t: float) -> str:
        second = int(t)
        if second != self.last:
            self.last = second
            self.text = datetime.fromtimestamp(second, UTC).strftime("%b %e %H:%M:%S")
        return self.text


@dataclass
class Message:
    qid: str
    sender: str
    arrival: float
    rcpts: list[tuple[str, int]]  # (address, index into DEFERRALS or -1: deliverable)
    tries: int = 0


def _pf(seconds: float) -> str:
    """A delay as Postfix logs it: ``0.01``, ``4.5``, ``1035`` (never exponent notation)."""
    if seconds >= 10:
        return str(int(seconds))
    return f"{seconds:.2f}".rstrip("0").rstrip(".") or "0"


def _delivery(rng: random.Random, msg: Message, now: float, retry: bool) -> tuple[list[str], bool]:
    """Delivery lines for one run over ``msg``'s pending recipients; True when done."""
    lines, pending = [], []
    for rcpt, cls in msg.rcpts:
        pid = rng.randint(2000, 60000)
        age = now - msg.arrival
        delays = f"{_pf(rng.random() * 0.05)}/{_pf(age)}/{_pf(rng.random() * 0.3)}/0"
        if cls < 0 or (retry and cls != DEAD and rng.random() < 0.25):
            domain = rcpt.split("@", 1)[1]
            lines.append(
                f"postfix/smtp[{pid}]: {msg.qid}: to=<{rcpt}>, "
                f"relay=mx.{domain}[192.0.2.{pid % 250 + 1}]:25, "
                f"delay={_pf(age + 0.4)}, delays={delays}, dsn=2.0.0, status=sent (250 2.0.0 Ok: "
                f"queued as {rng.getrandbits(40):010X})"
            )
        elif not retry and rng.random() < 0.04:
            lines.append(
                f"postfix/smtp[{pid}]: {msg.qid}: to=<{rcpt}>, relay=mx.{rcpt.split('@')[1]}"
                f"[192.0.2.7]:25, delay=0.6, delays={delays}, dsn=5.1.1, status=bounced (host "
                f"mx.example[192.0.2.7] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: "
                "User unknown in virtual mailbox table (in reply to RCPT TO command))"
            )
        else:
            _w, domain, mx, ip, dsn, reason = DEFERRALS[cls]
            text = reason.format(mx=mx, ip=ip, rcpt=rcpt, domain=domain)
            untried = retry and rng.random() < 0.5
            prog, relay = (
                ("postfix/error", "none")
                if untried or not mx
                else ("postfix/smtp", f"{mx}[{ip}]:25")
            )
            if untried:
                text = "delivery temporarily suspended: " + text
            lines.append(
                f"{prog}[{pid}]: {msg.qid}: to=<{rcpt}>, relay={relay}, delay={_pf(age + 0.3)}, "
                f"delays={delays}, dsn={dsn}, status=deferred ({text})"
            )
            pending.append((rcpt, cls))
    msg.rcpts = pending
    return lines, not pending


def _arrival(rng: random.Random, n: int, t: float) -> tuple[list[str], Message]:
    qid = f"{rng.getrandbits(20):05X}{n:06X}"
    client = f"client{n % 97}.example[198.51.100.{n % 250 + 1}]"
    pid = rng.randint(2000, 60000)
    sender = rng.choice(SENDERS)
    rcpts = []
    for _ in range(rng.choice((1, 1, 1, 1, 2, 3))):
        if rng.random() < 0.1:  # one recipient in ten is at a troubled destination
            cls = rng.choices(range(len(DEFERRALS)), [w[0] for w in DEFERRALS])[0]
            domain = DEFERRALS[cls][1]
        else:
            cls, domain = -1, rng.choice(GOOD_DOMAINS)
        rcpts.append((f"{rng.choice(USERS)}{rng.randint(1, 500)}@{domain}", cls))
    lines = [
        f"postfix/smtpd[{pid}]: connect from {client}",
        f"postfix/smtpd[{pid}]: {qid}: client={client}",
        f"postfix/cleanup[{pid + 1}]: {qid}: message-id=<{rng.getrandbits(64):016x}@app.test>",
        f"postfix/qmgr[812]: {qid}: from=<{sender}>, size={rng.randint(900, 90000)}, "
        f"nrcpt={len(rcpts)} (queue active)",
        f"postfix/smtpd[{pid}]: disconnect from {client} ehlo=1 mail=1 rcpt={len(rcpts)} data=1 "
        f"quit=1 commands={4 + len(rcpts)}",
    ]
    return lines, Message(qid, sender, t, rcpts)


def generate(path: Path, size: int, days: float, seed: int = 7) -> int:
    """Write a log of at least ``size`` bytes spanning ``days`` days up to now; its lines."""
    rng = random.Random(seed)
    end = time.time()
    start = end - days * 86400
    rate = _messages_per_second(size, days)
    stamp = Stamp()
    events: list[tuple[float, int, Message | None]] = []
    n = count = written = 0
    t = start
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", buffering=8 * 1024 * 1024) as out:
        buffer: list[str] = []
        while t < end or events:
            t += rng.expovariate(rate)
            while events and events[0][0] <= t:
                when, _, msg = heapq.heappop(events)
                lines = _event(rng, msg, when, events, n)
                n += 1
                buffer += [f"{stamp(when)} mail {line}" for line in lines]
            if t < end:
                lines, msg = _arrival(rng, n, t)
                buffer += [f"{stamp(t)} mail {line}" for line in lines]
                heapq.heappush(events, (t + rng.random() * 2, n, msg))
                n += 1
                if n % 5000 == 0:
                    heapq.heappush(events, (t + 1, n + 1, None))  # anvil noise
            elif events:
                t = events[0][0]
                if t > end:
                    break
            if len(buffer) > 50_000:
                written += _flush(out, buffer)
                count += len(buffer)
                buffer = []
                status(f"generating: {written / 2**30:.2f} GiB")
        written += _flush(out, buffer)
        count += len(buffer)
    tmp.chmod(0o644)
    tmp.rename(path)
    return count


def _flush(out: Any, buffer: list[str]) -> int:
    text = "\n".join(buffer) + "\n" if buffer else ""
    out.write(text)
    return len(text)


def _event(
    rng: random.Random,
    msg: Message | None,
    when: float,
    events: list[tuple[float, int, Message | None]],
    n: int,
) -> list[str]:
    if msg is None:
        return [
            f"postfix/anvil[{rng.randint(2000, 60000)}]: statistics: max connection rate "
            f"{rng.randint(1, 30)}/60s for (smtp:198.51.100.{rng.randint(1, 250)}) at "
            f"{datetime.fromtimestamp(int(when), UTC).strftime('%b %e %H:%M:%S')}"
        ]
    if when - msg.arrival > MAX_LIFETIME:
        return [
            f"postfix/qmgr[812]: {msg.qid}: from=<{msg.sender}>, status=expired, "
            "returned to sender",
            f"postfix/qmgr[812]: {msg.qid}: removed",
        ]
    lines, done = _delivery(rng, msg, when, msg.tries > 0)
    msg.tries += 1
    if done:
        return [*lines, f"postfix/qmgr[812]: {msg.qid}: removed"]
    backoff = min(300 * 2 ** (msg.tries - 1), 4000) * (1 + rng.random() * 0.2)
    heapq.heappush(events, (when + backoff, n, msg))
    return lines


def _messages_per_second(size: int, days: float) -> float:
    """The arrival rate that fills ``size`` bytes in ``days``, from a pilot of 4,000 messages
    (their arrival lines, every retry, and removal)."""
    rng = random.Random(1)
    total, messages = 0, 4000
    for i in range(messages):
        arrival, msg = _arrival(rng, i, 0.0)
        total += sum(len(line) + 21 for line in arrival)
        when, tries = 1.0, 0
        while when - msg.arrival <= MAX_LIFETIME:
            out, done = _delivery(rng, msg, when, tries > 0)
            total += sum(len(line) + 21 for line in out)
            tries += 1
            if done:
                break
            when += min(300 * 2 ** (tries - 1), 4000) * 1.1
        total += 45  # "removed" or expiry
    return size / (total / messages) / (days * 86400) * 1.03


# -- measuring --------------------------------------------------------------------------------


class Status:
    def __call__(self, text: str) -> None:
        sys.stderr.write(
            ("\r\033[K" if sys.stderr.isatty() else "")
            + text
            + ("" if sys.stderr.isatty() else "\n")
        )
        sys.stderr.flush()


status = Status()


def measure(argv: list[str]) -> tuple[float, int, bytes]:
    """Run ``argv``: wall seconds from spawn to exit, the child's own peak RSS (KiB), stdout."""
    with tempfile.TemporaryDirectory(prefix="mailqbot-bench-run-") as tmp:
        out_path, err_path = f"{tmp}/out", f"{tmp}/err"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 1, out_path, flags, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, err_path, flags, 0o600),
        ]
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions)
        _, wait_status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - started
        out, err = Path(out_path).read_bytes(), Path(err_path).read_bytes()
    if os.waitstatus_to_exitcode(wait_status) != 0:
        raise RuntimeError(f"{argv[:4]} failed: {err.decode(errors='replace')[-1500:]}")
    return elapsed, usage.ru_maxrss, out


def bot_argv(since: str, db: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", since, "--db", db]


def pflogsumm_totals(text: str) -> str:
    """pflogsumm's "Grand Totals" lines for delivered/deferred/bounced, as it prints them
    (it abbreviates large numbers: ``1073k``)."""
    wanted = ("delivered", "deferred", "bounced")
    lines = [" ".join(line.split()) for line in text.splitlines()[:20]]
    return "; ".join(line for line in lines if len(line.split()) > 1 and line.split()[1] in wanted)


# -- the bot side (a child process) -------------------------------------------------------------


async def child(since: str, db: str) -> dict[str, Any]:
    from bot.app.pipeline import handle
    from bot.app.runtime import open_services
    from bot.context import Request
    from bot.inventory import Inventory, parse_config
    from bot.postfix import logreader, logsource, tools
    from bot.settings import Settings

    async def bench_source(ex: Any, host: Any) -> Any:
        """The same two commands as the real detection, pointed at the bench file."""
        result = await ex.run(host, tools.maillog_file_setting())
        result = await ex.run(host, tools.file_sizes(str(BENCH_LOG)))
        size = logsource.parse_sizes(result.stdout)[str(BENCH_LOG)]
        return logsource.LogTarget("file", str(BENCH_LOG), size)

    logreader.detect_source = bench_source
    config = (
        LAB_CONFIG.read_text()
        + '\n[[hosts]]\nname = "bench"\naddress = "127.0.0.1"\nsudo = false\n'
    )
    config = config.replace('hosts = ["lab"]', 'hosts = ["lab", "bench"]')
    inventory = Inventory(parse_config(config, "<bench>"))
    async with open_services(Settings(DATABASE_URL=db), inventory) as services:
        started = time.perf_counter()
        request = Request(
            source="console", user_id="console:bench", text=f"log bench since={since}"
        )
        outcome = await handle(request, services)
        seconds = time.perf_counter() - started
    if not outcome.ok:
        raise RuntimeError(outcome.reply.text)
    text = outcome.reply.text
    return {"seconds": seconds, "text": text}


# -- the parent -------------------------------------------------------------------------------


def sudo_overhead() -> float:
    """Median extra seconds ``sudo -n`` adds to one remote ``tail`` on the lab (open connection)."""
    from bot.inventory import Inventory, load_config
    from bot.remote.command import RemoteCommand
    from bot.remote.ssh import SSHExecutor

    async def run() -> float:
        host = Inventory(load_config(LAB_CONFIG)).get("lab")
        plain = RemoteCommand(("/usr/bin/tail", "-c", "1", str(BENCH_LOG)))
        sudo = RemoteCommand(("/usr/bin/tail", "-n", "1", "/var/log/postfix.log"), sudo=True)
        times: dict[bool, list[float]] = {False: [], True: []}
        async with SSHExecutor() as ex:
            await ex.run(host, plain)
            for _ in range(15):
                for use_sudo, command in ((False, plain), (True, sudo)):
                    t = time.perf_counter()
                    await ex.run(host, command)
                    times[use_sudo].append(time.perf_counter() - t)
        return statistics.median(times[True]) - statistics.median(times[False])

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.1)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.db))))
        return 0
    return bench(args)


def bench(args: argparse.Namespace) -> int:
    loads = [Path("/proc/loadavg").read_text().split()[:3]]
    BENCH_DIR.mkdir(mode=0o755, exist_ok=True)
    os.chown(BENCH_DIR, 0, 0)
    BENCH_DIR.chmod(0o755)
    size = int(args.size_gib * 2**30)
    generated = 0.0
    if not BENCH_LOG.exists() or BENCH_LOG.stat().st_size < size:
        free = shutil.disk_usage(BENCH_DIR).free
        if free < 3 * size:
            raise SystemExit(f"not enough space in {BENCH_DIR}: {free / 2**30:.1f} GiB free")
        t = time.perf_counter()
        lines = generate(BENCH_LOG, size, args.days)
        generated = time.perf_counter() - t
        status(f"generated {lines:,} lines in {generated:.0f} s")
    try:
        return _measure_all(args, loads, generated)
    finally:
        if not args.keep:
            shutil.rmtree(BENCH_DIR, ignore_errors=True)


def _measure_all(args: argparse.Namespace, loads: list[list[str]], generated: float) -> int:
    from bot.db.migrate import upgrade_async

    file_size = BENCH_LOG.stat().st_size
    with BENCH_LOG.open("rb") as f:
        first = f.readline()[:15].decode()
    status("warming the page cache")
    subprocess.run(["cat", str(BENCH_LOG)], stdout=subprocess.DEVNULL, check=True)
    workdir = Path(tempfile.mkdtemp(prefix="mailqbot-bench-"))
    db = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
    asyncio.run(upgrade_async(db))
    runs: dict[str, list[tuple[float, int]]] = {"bot24": [], "pflogsumm": []}
    inner: list[float] = []
    text24 = pflog_text = ""
    for i in range(args.repeat):
        order = ["bot24", "pflogsumm"] if i % 2 == 0 else ["pflogsumm", "bot24"]
        for name in order:
            status(f"run {i + 1}/{args.repeat}: {name}")
            if name == "bot24":
                wall, rss, out = measure(bot_argv("24h", db))
                result = json.loads(out)
                inner.append(result["seconds"])
                text24 = result["text"]
            else:
                wall, rss, out = measure([PFLOGSUMM, str(BENCH_LOG)])
                pflog_text = out.decode(errors="replace")
            runs[name].append((wall, rss))
            status(f"run {i + 1}/{args.repeat}: {name}: {wall:.2f} s, {rss / 1024:.1f} MiB")
    status("baseline: bot since=1m (almost nothing to read)")
    _, rss_base, _ = measure(bot_argv("1m", db))
    status("whole file: bot since=31d")
    wall_all, rss_all, out_all = measure(bot_argv("31d", db))
    text_all = json.loads(out_all)["text"]
    inner_all = json.loads(out_all)["seconds"]
    status("sudo overhead")
    overhead = sudo_overhead()
    loads.append(Path("/proc/loadavg").read_text().split()[:3])
    shutil.rmtree(workdir, ignore_errors=True)
    _report(args, file_size, first, generated, runs, inner, (wall_all, rss_all, inner_all),
            overhead, loads, text24, text_all, pflog_text, rss_base)  # fmt: skip
    ratio = statistics.median(w for w, _ in runs["pflogsumm"]) / statistics.median(
        w for w, _ in runs["bot24"]
    )
    return 0 if ratio >= TARGET_RATIO else 1


def _report(
    args: argparse.Namespace,
    file_size: int,
    first: str,
    generated: float,
    runs: dict[str, list[tuple[float, int]]],
    inner: list[float],
    whole: tuple[float, int, float],
    overhead: float,
    loads: list[list[str]],
    text24: str,
    text_all: str,
    pflog_text: str,
    rss_base: int,
) -> None:
    bot = statistics.median(w for w, _ in runs["bot24"])
    pfl = statistics.median(w for w, _ in runs["pflogsumm"])
    bot_rss = max(r for _, r in runs["bot24"]) / 1024
    pfl_rss = max(r for _, r in runs["pflogsumm"]) / 1024
    status("")
    print(
        f"mail log: {BENCH_LOG}, {file_size:,} bytes ({file_size / 2**30:.2f} GiB), "
        f"{args.days:g} days from {first}"
        + (f"; generated in {generated:.0f} s" if generated else "")
    )
    print(
        f"load average before {' '.join(loads[0])}, after {' '.join(loads[-1])}; "
        f"{os.cpu_count()} CPUs; {args.repeat} interleaved runs each, medians"
    )
    print()
    print(f"{'':34}{'wall s':>9}{'peak RSS MiB':>14}   runs (s)")
    print(
        f"{'/mailq log bench since=24h (bot)':34}{bot:9.2f}{bot_rss:14.1f}   "
        + " ".join(f"{w:.2f}" for w, _ in runs["bot24"])
    )
    print(f"{'  of which inside the command':34}{statistics.median(inner):9.2f}")
    print(
        f"{'pflogsumm FILE (local)':34}{pfl:9.2f}{pfl_rss:14.1f}   "
        + " ".join(f"{w:.2f}" for w, _ in runs["pflogsumm"])
    )
    print(
        f"{'/mailq log bench since=31d (whole)':34}{whole[0]:9.2f}{whole[1] / 1024:14.1f}   "
        f"(inside the command {whole[2]:.2f})"
    )
    print()
    print(
        f"RATIO pflogsumm / bot since=24h: {pfl / bot:.1f}x (wall, process spawn to exit); "
        f"{pfl / statistics.median(inner):.1f}x against the command alone; "
        f"target >= {TARGET_RATIO:g}x"
    )
    print(f"ratio pflogsumm / bot whole file: {pfl / whole[0]:.1f}x")
    print(
        f"memory: the bot process with almost nothing to read (since=1m: interpreter, imports, "
        f"database, SSH connection) peaks at {rss_base / 1024:.1f} MiB"
    )
    print(
        f"memory: bot peak RSS {bot_rss:.1f} MiB for 24h, {whole[1] / 1024:.1f} MiB for the whole "
        f"file; pflogsumm {pfl_rss:.1f} MiB"
    )
    print(
        f"sudo -n adds {overhead * 1000:.1f} ms per remote command on the lab (the bench host "
        "has sudo = false)"
    )
    print()
    print("bot since=24h, first lines:")
    print("\n".join("  " + line for line in text24.splitlines()[:8]))
    print("bot whole file, statuses:")
    print("\n".join("  " + line for line in text_all.splitlines()[2:9]))
    print(f"pflogsumm grand totals: {pflogsumm_totals(pflog_text)}")


if __name__ == "__main__":
    raise SystemExit(main())
