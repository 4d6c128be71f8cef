#!/usr/bin/env python3
"""Benchmark `summary` against bare `postqueue -j` over the same SSH connection.

    .venv/bin/python bench/bench_summary.py [--fill] [--sizes 10000,100000] [--repeat 5]
        [--min-time 5] [--quiet-wait SECONDS] [--config PATH] [--host lab] [--json FILE]

For each queue size (``--fill`` first runs ``tests/lab/fill.py SIZE --clear``; without it the
queue is measured as it is, once):

1. Time, on ONE open ``SSHExecutor`` connection, interleaved rounds (ABCQ, BCQA, CQAB, ...;
   at least ``--repeat``, and until the A runs add up to ``--min-time`` seconds):
   A = bare ``postqueue -j`` streamed through ``SSHExecutor.stream``, bytes and lines counted;
   B = the bot's summary path, ``bot.postfix.reader.read_summary`` (the ``postconf -h``
   settings, read once in the warm-up and then reused as the bot reuses them for
   ``SETTINGS_TTL``; then ``postqueue -j`` parsed and summarised while it streams);
   C = what ``/mailq summary HOST`` reads: B plus ``sudo du`` on the deferred spool alongside
   (``read_host(disk=True)``);
   Q = ``qshape deferred`` run on the host (the lab is this machine; needs root), the tool
   operators use today. Q/C is the issue's "at least 1.4x faster" target; after the rounds,
   C's qshape tables are compared with qshape's, started in the same second.
2. Peak memory of one run of A and of B, each in a fresh process: peak RSS (``VmHWM``) in a
   run without tracemalloc, and the tracemalloc peak in a second run.
3. Where B's extra time goes: the output of one A run is kept and the local stages of B are
   timed on it offline (no I/O).

Results go to stdout, progress to stderr. Targets (mailqbot issue): Q/C >= 1.4 with equal
numbers at 100k; B/A <= 1.25 and peak memory flat as the queue grows (largest/smallest size
<= 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
from bench_qshape import compare  # noqa: E402

from bot.inventory import Host, Inventory, load_config  # noqa: E402
from bot.postfix import postfix, tools  # noqa: E402
from bot.postfix.reader import HostReading, host_settings, read_host, read_summary  # noqa: E402
from bot.postfix.summary import QueueSummary, SummaryBuilder  # noqa: E402
from bot.remote.audited import Remote  # noqa: E402
from bot.remote.ssh import CHUNK_SIZE, SSHExecutor  # noqa: E402

DEFAULT_CONFIG = "/var/lib/mailqbot-lab/mailqbot.toml"
FILL = REPO / "tests" / "lab" / "fill.py"
TIME_TARGET = 1.25
QSHAPE_TARGET = 1.4
QSHAPE = "/usr/sbin/qshape"
MEMORY_TARGET = 1.2
OFFLINE_REPEAT = 3
QUIET_CPUS = 0.25  # background load above this makes a run "not quiet"


# -- progress on stderr -------------------------------------------------------------------


class Status:
    """One progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, text: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[K{text}")
        else:
            sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
        self.shown = False


status = Status()


async def _no_progress(_text: str) -> None:
    return None


# -- the two measured paths ---------------------------------------------------------------


@dataclass
class Bare:
    seconds: float
    bytes: int
    lines: int
    chunks: list[bytes] = field(default_factory=list)


async def run_bare(ex: SSHExecutor, host: Host, keep: bool = False) -> Bare:
    """A: stream `postqueue -j` over the executor's connection; count bytes and lines only."""
    size = lines = 0
    kept: list[bytes] = []
    started = time.perf_counter()
    async with ex.stream(host, tools.postqueue_json()) as out:
        async for chunk in out:
            size += len(chunk)
            lines += chunk.count(b"\n")
            if keep:
                kept.append(chunk)
    return Bare(time.perf_counter() - started, size, lines, kept)


async def run_summary(ex: SSHExecutor, host: Host) -> tuple[float, QueueSummary]:
    """B: the bot's summary path, exactly as the `summary` command reads a host."""
    started = time.perf_counter()
    summary = await read_summary(Remote.reader(ex), host, time.time())
    return time.perf_counter() - started, summary


async def run_command_reading(ex: SSHExecutor, host: Host) -> tuple[float, HostReading]:
    """C: what `/mailq summary HOST` reads: B plus `sudo du` on the deferred spool alongside."""
    started = time.perf_counter()
    reading = await read_host(Remote.reader(ex), host, time.time(), disk=True)
    return time.perf_counter() - started, reading


def qshape_available() -> bool:
    return os.geteuid() == 0 and Path(QSHAPE).exists()


def run_qshape() -> None:
    """Q: `qshape deferred` on the host (here: this machine), output read whole."""
    proc = subprocess.run([QSHAPE, "deferred"], capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"qshape failed: {proc.stderr.decode(errors='replace').strip()}")


# -- timing (parent) ----------------------------------------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Run:
    """One timed run: wall seconds, this process's CPU seconds, busy CPUs machine-wide."""

    wall: float
    cpu: float
    busy_cpus: float


class Meter:
    def __enter__(self) -> Meter:
        self._jiffies = machine_jiffies()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        busy, total = (b - a for a, b in zip(self._jiffies, machine_jiffies(), strict=True))
        self.run = Run(wall, cpu, busy / max(total, 1) * (os.cpu_count() or 1))


@dataclass
class Timing:
    size_label: int
    bare: list[Run]
    summary: list[Run]
    command: list[Run]
    disk_bytes: int | None
    disk_problem: str
    bytes: int
    lines: int
    messages: int
    recipients: int
    postconf: list[float]
    chunks: list[bytes]
    background_cpus: float = 0.0
    changed: str = ""
    qshape: list[Run] = field(default_factory=list)
    qshape_numbers: str = "not compared"

    @property
    def qshape_ratio(self) -> float | None:
        """How many times faster C is than qshape (medians)."""
        if not self.qshape:
            return None
        return self.median(self.qshape) / self.median(self.command)

    @property
    def trouble(self) -> list[str]:
        """Why this size's numbers cannot be trusted (empty if they can)."""
        found = [self.changed] if self.changed else []
        if self.background_cpus >= QUIET_CPUS:
            found.append(f"{self.background_cpus:.2f} CPUs busy with other work around the runs")
        return found

    @staticmethod
    def median(runs: list[Run], what: str = "wall") -> float:
        return statistics.median(getattr(r, what) for r in runs)

    @property
    def ratio(self) -> float:
        return self.median(self.summary) / self.median(self.bare)

    @property
    def command_ratio(self) -> float:
        return self.median(self.command) / self.median(self.bare)

    @property
    def ratio_of_mins(self) -> float:
        return min(r.wall for r in self.summary) / min(r.wall for r in self.bare)


def _span(values: Iterable[int]) -> str:
    ordered = sorted(set(values))
    return f"{ordered[0]:,}" if len(ordered) == 1 else f"{ordered[0]:,}..{ordered[-1]:,}"


def background_busy(seconds: float = 2.0) -> float:
    """CPUs busy machine-wide while this script sleeps: other work that adds noise."""
    with Meter() as meter:
        time.sleep(seconds)
    return meter.run.busy_cpus


def wait_quiet(label: int, limit: float) -> float:
    """Background busy CPUs, after waiting up to ``limit`` s for them to drop below QUIET_CPUS."""
    deadline = time.monotonic() + limit
    while True:
        status(f"[{label:,}] measuring background CPU use")
        background = background_busy()
        if background < QUIET_CPUS or time.monotonic() >= deadline:
            return background
        status(f"[{label:,}] {background:.2f} CPUs busy with other work; waiting for quiet")
        time.sleep(3.0)


async def time_size(
    host: Host, label: int, repeat: int, min_time: float, quiet_wait: float
) -> Timing:
    background = wait_quiet(label, quiet_wait)
    async with SSHExecutor() as ex:
        status(f"[{label:,}] connecting and warming up")
        await ex.run(host, tools.postconf_version())  # opens the connection
        warm = await run_bare(ex, host, keep=True)  # warms the host's page cache too
        _, summary = await run_summary(ex, host)
        _, reading = await run_command_reading(ex, host)
        runs: dict[str, list[Run]] = {"A": [], "B": [], "C": [], "Q": []}
        paths = "ABCQ" if qshape_available() else "ABC"
        if "Q" in paths:
            run_qshape()  # warm the page cache for qshape's reads too
        lines = {warm.lines}
        sizes = {warm.bytes}
        counts = {summary.total_messages, reading.summary.total_messages}
        i = 0
        while i < repeat or sum(r.wall for r in runs["A"]) < min_time:
            order = paths[i % len(paths) :] + paths[: i % len(paths)]  # ABCQ, BCQA, ...
            i += 1
            for which in order:
                status(f"[{label:,}] round {i} (at least {repeat}, {min_time:g} s of A): {which}")
                with Meter() as meter:
                    if which == "A":
                        bare = await run_bare(ex, host)
                    elif which == "Q":
                        run_qshape()
                    elif which == "B":
                        _, summary = await run_summary(ex, host)
                    else:
                        _, reading = await run_command_reading(ex, host)
                runs[which].append(meter.run)
                if which == "A":
                    lines.add(bare.lines)
                    sizes.add(bare.bytes)
                elif which == "B":
                    counts.add(summary.total_messages)
                else:
                    counts.add(reading.summary.total_messages)
        status(f"[{label:,}] timing the bot's `postconf -h ...` round trip alone")
        postconf_times = []
        for _ in range(max(repeat, 5)):
            started = time.perf_counter()
            await host_settings(Remote.reader(ex), host)
            postconf_times.append(time.perf_counter() - started)
        numbers = "not compared (qshape needs root)"
        if "Q" in paths:
            status(f"[{label:,}] comparing the qshape tables")
            numbers = await compare(ex, host)
    status(f"[{label:,}] measuring background CPU use again")
    background = max(background, background_busy())
    changed = ""
    if len(lines) != 1 or len(counts) != 1 or len(sizes) != 1:
        changed = (
            f"the queue changed during the runs (lines {_span(lines)}, bytes {_span(sizes)}, "
            f"summary messages {_span(counts)}): something else used the lab queue"
        )
    (messages, recipients) = (summary.total_messages, summary.total_recipients)
    timing = Timing(
        label,
        runs["A"],
        runs["B"],
        runs["C"],
        reading.disk.bytes if reading.disk else None,
        reading.disk.problem if reading.disk else "not asked",
        warm.bytes,
        warm.lines,
        messages,
        recipients,
        postconf_times,
        warm.chunks,
        background,
        changed,
        runs["Q"],
        numbers,
    )
    status(
        f"[{label:,}] A {timing.median(timing.bare):.3f} s, B {timing.median(timing.summary):.3f} s"
        f", C {timing.median(timing.command):.3f} s: B/A {timing.ratio:.2f}x, "
        f"C/A {timing.command_ratio:.2f}x"
    )
    status.clear()
    return timing


# -- memory (fresh child processes) -------------------------------------------------------


def vm_hwm_kib() -> int:
    """Peak RSS of this process image (``VmHWM``), in KiB.

    Not ``ru_maxrss``: on Linux a child made by fork + exec starts with its parent's
    ``ru_maxrss``, so a big parent (this script holds a whole listing) would hide the child's
    own peak. ``VmHWM`` belongs to the address space that ``exec`` created.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_main(mode: str, config: str, host_name: str, trace: bool) -> int:
    """One run of `mode` in this fresh process; prints a JSON line of its memory figures."""
    host = Inventory(load_config(Path(config))).get(host_name)

    async def work() -> dict[str, Any]:
        async with SSHExecutor() as ex:
            await ex.run(host, tools.postconf_version())  # connect first: not the work
            before = vm_hwm_kib()
            if trace:
                tracemalloc.start()
            if mode == "summary":
                seconds, summary = await run_summary(ex, host)
                messages = summary.total_messages
            else:
                bare = await run_bare(ex, host)
                seconds, messages = bare.seconds, bare.lines
            peak_traced = tracemalloc.get_traced_memory()[1] if trace else 0
            tracemalloc.stop()
            peak = vm_hwm_kib()
        return {
            "mode": mode,
            "messages": messages,
            "seconds": seconds,
            "rss_before_kib": before,
            "rss_peak_kib": peak,
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "traced_peak_bytes": peak_traced,
        }

    print(json.dumps(asyncio.run(work())))
    return 0


@dataclass
class Memory:
    mode: str
    messages: int
    rss_before_kib: int
    rss_peak_kib: int
    traced_peak_bytes: int


def measure_memory(label: int, mode: str, config: str, host_name: str) -> Memory:
    figures: dict[bool, dict[str, Any]] = {}
    for trace in (False, True):
        status(f"[{label:,}] memory: {mode} in a fresh process{' (tracemalloc)' if trace else ''}")
        argv = [sys.executable, __file__, "--child", mode, "--config", config, "--host", host_name]
        proc = subprocess.run(
            [*argv, *(["--trace"] if trace else [])], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"memory child ({mode}) failed:\n{proc.stderr}")
        figures[trace] = json.loads(proc.stdout.strip().splitlines()[-1])
    plain, traced = figures[False], figures[True]
    return Memory(
        mode,
        plain["messages"],
        plain["rss_before_kib"],
        plain["rss_peak_kib"],
        traced["traced_peak_bytes"],
    )


# -- offline breakdown of B's local work --------------------------------------------------


def best_of(fn: Callable[[], object], repeat: int = OFFLINE_REPEAT) -> float:
    """Least CPU time of ``repeat`` calls (CPU time: other load on the machine matters less)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def breakdown(chunks: list[bytes]) -> list[tuple[str, float]]:
    """Seconds for each local stage of the summary path on already received output."""
    lines = [line for raw in b"".join(chunks).split(b"\n") if (line := raw.strip())]
    now = time.time()

    def sha256() -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)

    def loads() -> None:
        for line in lines:
            orjson.loads(line)

    def ignore(*_fields: object) -> None:
        return None

    def parse() -> None:
        parser = postfix.PostqueueJsonParser()
        for chunk in chunks:
            parser.feed_into(chunk, ignore)
        parser.close()

    def parse_and_build() -> None:
        parser = postfix.PostqueueJsonParser()
        builder = SummaryBuilder(now)
        for chunk in chunks:
            parser.feed_into(chunk, builder.add_fields)
        parser.close()
        builder.build()

    def build_only(fields: list[tuple[Any, ...]]) -> Callable[[], None]:
        def run() -> None:
            builder = SummaryBuilder(now)
            for record in fields:
                builder.add_fields(*record)
            builder.build()

        return run

    status("breakdown: sha256")
    t_sha = best_of(sha256)
    status("breakdown: orjson.loads per line")
    t_loads = best_of(loads)
    status("breakdown: parser.feed_into")
    t_parse = best_of(parse)
    status("breakdown: SummaryBuilder.add_fields")
    parser = postfix.PostqueueJsonParser()
    fields: list[tuple[Any, ...]] = []
    for chunk in chunks:
        parser.feed_into(chunk, lambda *record: fields.append(record))
    t_build = best_of(build_only(fields))
    fields.clear()
    status("breakdown: parse + build")
    t_both = best_of(parse_and_build)
    return [
        ("sha256 of the output (audit digest)", t_sha),
        ("orjson.loads per line (decode floor)", t_loads),
        ("parser.feed_into: split + loads + checks", t_parse),
        ("SummaryBuilder.add_fields + build (fields already parsed)", t_build),
        ("parser.feed_into + SummaryBuilder together", t_both),
    ]


# -- report -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    """Aligned text table; the first ``left`` columns are left-aligned, the rest right."""
    rows = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        cells = [
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(rows[0]), rule, *(fmt(r) for r in rows[1:])])


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f}"


def machine_facts(postfix_version: str) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine   nproc {len(os.sched_getaffinity(0))}, {cpu}, "
        f"{platform.system()} {platform.release()}",
        f"software  Postfix {postfix_version}, Python {platform.python_version()}, "
        f"asyncssh {importlib.metadata.version('asyncssh')}, "
        f"orjson {importlib.metadata.version('orjson')}, ssh.CHUNK_SIZE {CHUNK_SIZE:,}",
        f"mailqbot  {git or '?'} (git describe --always --dirty)",
        f"load avg  {load} (1/5/15 min, at the start)",
    ]


def report_timing(timings: list[Timing]) -> None:
    print("Wall time in seconds (median and min of the runs), one SSH connection per size, A, B,")
    print("C and Q interleaved:")
    print("  A = bare `postqueue -j` over SSHExecutor.stream, bytes and lines counted only")
    print("  B = read_summary: the `postconf -h` settings (read in the warm-up, reused as the bot")
    print("      reuses them for 5 min) + `postqueue -j` parsed and summarised while it streams")
    print("  C = what `/mailq summary HOST` reads: B + `sudo du -sk <queue_directory>/deferred`")
    print("      run alongside the listing (read_host disk=True)")
    print("  Q = `qshape deferred` on the host (root); Q/C = how many times faster the summary is")
    print("  B/A = ratio of the medians; mins = ratio of the fastest runs")
    print("  cpu = this process's CPU seconds (median); busy = CPUs busy machine-wide (median),")
    print("        i.e. the bot plus sshd, postqueue and showq, plus anything else running")
    rows = []
    for t in timings:
        a_med, b_med = t.median(t.bare), t.median(t.summary)
        rows.append(
            [
                f"{t.lines:,}",
                f"{t.bytes / 2**20:,.1f}",
                f"{a_med:.3f}",
                f"{min(r.wall for r in t.bare):.3f}",
                f"{b_med:.3f}",
                f"{min(r.wall for r in t.summary):.3f}",
                f"{t.ratio:.2f}x",
                f"{t.ratio_of_mins:.2f}x",
                f"{t.median(t.bare, 'cpu'):.2f}",
                f"{t.median(t.summary, 'cpu'):.2f}",
                f"{t.median(t.bare, 'busy_cpus'):.2f}",
                f"{t.median(t.summary, 'busy_cpus'):.2f}",
                f"{t.messages:,}",
                f"{t.recipients:,}",
            ]
        )
    headers = [
        "queue (lines)",
        "MiB",
        "A med",
        "A min",
        "B med",
        "B min",
        "B/A",
        "mins",
        "A cpu",
        "B cpu",
        "A busy",
        "B busy",
        "B messages",
        "B recipients",
    ]
    print(table(headers, rows))
    for t in timings:
        disk = f"{t.disk_bytes / 2**20:,.0f} MiB" if t.disk_bytes is not None else t.disk_problem
        print(
            f"  {t.lines:,}: C med {t.median(t.command):.3f} min "
            f"{min(r.wall for r in t.command):.3f}, C/A {t.command_ratio:.2f}x, "
            f"cpu {t.median(t.command, 'cpu'):.2f}, busy {t.median(t.command, 'busy_cpus'):.2f}; "
            f"du said {disk}"
        )
    for t in timings:
        if t.qshape_ratio is None:
            print(f"  {t.lines:,}: Q not run ({t.qshape_numbers})")
            continue
        print(
            f"  {t.lines:,}: Q med {t.median(t.qshape):.3f} min {min(r.wall for r in t.qshape):.3f}"
            f", Q/C {t.qshape_ratio:.2f}x (C is that many times faster than qshape), "
            f"busy {t.median(t.qshape, 'busy_cpus'):.2f}; qshape numbers: {t.qshape_numbers}"
        )
    for t in timings:
        rounds = f"{t.lines:,}: {len(t.bare)} rounds;"
        pad = " " * len(rounds)
        paths = (("A", t.bare), ("B", t.summary), ("C", t.command), ("Q", t.qshape))
        for name, runs in (path for path in paths if path[1]):
            walls = " ".join(f"{r.wall:.3f}" for r in runs)
            print(f"  {rounds if name == 'A' else pad} {name} runs {walls}")
    for t in timings:
        quiet = "quiet" if t.background_cpus < QUIET_CPUS else "NOT quiet: noisy numbers"
        print(
            f"  {t.lines:,}: up to {t.background_cpus:.2f} CPUs busy with other work in 2 s "
            f"before and after the runs ({quiet})"
        )
        if t.changed:
            print(f"  !! {t.lines:,}: {t.changed}")
        elif t.messages != t.lines:
            print(f"  !! {t.lines:,} lines but the summary counted {t.messages:,} messages")
    print()


def report_memory(memory: dict[int, dict[str, Memory]]) -> dict[str, float]:
    print("Peak memory of one run in a fresh process: peak RSS is VmHWM (ru_maxrss of a forked")
    print("child starts at its parent's peak); 'before' = after imports and connecting;")
    print("tracemalloc peak = Python allocations during the run (a separate run)")
    rows = []
    for label, by_mode in memory.items():
        for mode in ("bare", "summary"):
            m = by_mode[mode]
            rows.append(
                [
                    f"{label:,}",
                    mode,
                    f"{m.messages:,}",
                    mib(m.rss_before_kib),
                    mib(m.rss_peak_kib),
                    mib(m.rss_peak_kib - m.rss_before_kib),
                    mib(m.traced_peak_bytes / 1024),
                ]
            )
    headers = [
        "size",
        "path",
        "messages",
        "RSS before MiB",
        "peak RSS MiB",
        "growth MiB",
        "tracemalloc peak MiB",
    ]
    print(table(headers, rows, left=2))
    ratios: dict[str, float] = {}
    labels = list(memory)
    if len(labels) >= 2:
        small, large = memory[labels[0]], memory[labels[-1]]
        for mode in ("bare", "summary"):
            big, sml = large[mode], small[mode]
            rss = big.rss_peak_kib / sml.rss_peak_kib
            growth = (big.rss_peak_kib - big.rss_before_kib) / max(
                sml.rss_peak_kib - sml.rss_before_kib, 1
            )
            traced = big.traced_peak_bytes / max(sml.traced_peak_bytes, 1)
            ratios[mode] = rss
            print(
                f"  {mode:8} {labels[-1]:,}/{labels[0]:,}: peak RSS {rss:.2f}x, "
                f"growth {growth:.2f}x, tracemalloc peak {traced:.2f}x"
            )
    print()
    return ratios


def report_breakdown(timing: Timing, stages: list[tuple[str, float]]) -> None:
    chunks = timing.chunks
    sizes = [len(c) for c in chunks]
    a_med, b_med = timing.median(timing.bare), timing.median(timing.summary)
    postconf_med = statistics.median(timing.postconf)
    print(
        f"Where B's extra time goes at {timing.lines:,} messages: B - A = {b_med - a_med:.3f} s "
        "(medians)."
    )
    print(f"Local stages: CPU time, offline on one A run's output, best of {OFFLINE_REPEAT}.")
    print(
        f"That output arrived in {len(chunks):,} chunks of {statistics.mean(sizes) / 1024:,.1f} "
        f"KiB on average (max {max(sizes) / 1024:,.1f} KiB; reads ask for up to "
        f"{CHUNK_SIZE // 1024:,} KiB)."
    )
    rows = [["the bot's `postconf -h ...` round trip", f"{postconf_med:.3f}", "", ""]]
    for name, seconds in stages:
        rows.append(
            [
                name,
                f"{seconds:.3f}",
                f"{seconds / max(timing.lines, 1) * 1e6:,.2f}",
                f"{seconds / a_med:.0%}",
            ]
        )
    local = dict(stages)
    residual = (
        b_med
        - a_med
        - postconf_med
        - local["parser.feed_into + SummaryBuilder together"]
        - local["sha256 of the output (audit digest)"]
    )
    rows.append(["residual: B - A - postconf - parse/build - sha256", f"{residual:.3f}", "", ""])
    print(table(["stage", "seconds", "µs/msg", "of A"], rows))
    print()


def verdicts(timings: list[Timing], ratios: dict[str, float], labels: list[int]) -> None:
    trouble = [f"{t.lines:,}: {why}" for t in timings for why in t.trouble]
    if trouble:
        print("UNRELIABLE RUN (verdicts below are not to be trusted):")
        for line in trouble:
            print(f"  - {line}")
    worst = max(timings, key=lambda t: t.ratio)
    per_size = ", ".join(f"{t.lines:,}: {t.ratio:.3f}x" for t in timings)
    ok = all(t.ratio <= TIME_TARGET for t in timings)
    print(
        f"VERDICT time    B/A <= {TIME_TARGET}x at every size: "
        f"{'PASS' if ok else 'FAIL'} (worst {worst.ratio:.3f}x; {per_size})"
    )
    worst_c = max(timings, key=lambda t: t.command_ratio)
    print(
        f"(info)          C/A <= {TIME_TARGET}x at every size: "
        f"{'PASS' if worst_c.command_ratio <= TIME_TARGET else 'FAIL'} "
        f"(worst {worst_c.command_ratio:.3f}x)"
    )
    largest = timings[-1]
    if largest.qshape_ratio is None:
        print("VERDICT qshape  n/a: qshape was not run (run as root on the lab machine)")
    else:
        ok = largest.qshape_ratio >= QSHAPE_TARGET and largest.qshape_numbers.startswith("equal")
        print(
            f"VERDICT qshape  Q/C >= {QSHAPE_TARGET}x with equal numbers at {largest.lines:,}: "
            f"{'PASS' if ok else 'FAIL'} ({largest.qshape_ratio:.3f}x; {largest.qshape_numbers})"
        )
    if "summary" in ratios:
        rss = ratios["summary"]
        print(
            f"VERDICT memory  summary peak RSS {labels[-1]:,}/{labels[0]:,} <= {MEMORY_TARGET}x: "
            f"{'PASS' if rss <= MEMORY_TARGET else 'FAIL'} ({rss:.3f}x)"
        )
    else:
        print("VERDICT memory  n/a: needs two sizes (run with --fill)")


# -- main ---------------------------------------------------------------------------------


def fill(size: int) -> None:
    status(f"[{size:,}] filling the lab queue (tests/lab/fill.py {size} --clear)")
    status.clear()
    proc = subprocess.run(
        [sys.executable, str(FILL), str(size), "--clear"], stdout=sys.stderr, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"fill.py {size} --clear failed (exit {proc.returncode})")


async def postfix_version(host: Host) -> str:
    async with SSHExecutor() as ex:
        return (await ex.run(host, tools.postconf_version())).stdout.strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="queue sizes for --fill")
    parser.add_argument("--repeat", type=int, default=5, help="least timed runs of each path")
    parser.add_argument(
        "--min-time",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="add rounds until the bare runs of a size add up to this long (small queues)",
    )
    parser.add_argument("--fill", action="store_true", help="fill the lab queue to each size")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--host", default="lab")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before timing each size, wait up to this long for other CPU load to stop",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--child", choices=("bare", "summary"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.config, args.host, args.trace)

    host = Inventory(load_config(Path(args.config))).get(args.host)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.fill else [0]
    facts = machine_facts(asyncio.run(postfix_version(host)))
    timings: list[Timing] = []
    memory: dict[int, dict[str, Memory]] = {}
    stages: list[tuple[str, float]] = []
    started = time.monotonic()
    for size in sizes:
        if args.fill:
            fill(size)
        timing = asyncio.run(time_size(host, size, args.repeat, args.min_time, args.quiet_wait))
        timing.size_label = label = size or timing.lines
        memory[label] = {
            mode: measure_memory(label, mode, args.config, args.host)
            for mode in ("bare", "summary")
        }
        if args.fill and timing.lines != size:
            print(
                f"warning: asked for {size:,} messages, the queue holds {timing.lines:,}",
                file=sys.stderr,
            )
        if size == sizes[-1]:
            stages = breakdown(timing.chunks)
        else:
            timing.chunks = []
        timings.append(timing)
    status.clear()

    print("mailqbot bench: `summary` vs `qshape deferred` and bare `postqueue -j` (same SSH link)")
    print("\n".join(facts))
    print(
        f"host      {host.name} ({host.user}@{host.address}:{host.port}), repeat >= {args.repeat} "
        f"and >= {args.min_time:g} s of A per size, "
        f"{'filled with tests/lab/fill.py' if args.fill else 'queue as found'}, "
        f"took {time.monotonic() - started:,.0f} s"
    )
    print()
    report_timing(timings)
    ratios = report_memory(memory)
    report_breakdown(timings[-1], stages)
    verdicts(timings, ratios, list(memory))
    if args.json:
        raw = {
            "facts": facts,
            "timings": [
                {k: v for k, v in dataclasses.asdict(t).items() if k != "chunks"} for t in timings
            ],
            "memory": {
                label: {mode: dataclasses.asdict(m) for mode, m in by_mode.items()}
                for label, by_mode in memory.items()
            },
            "stages": stages,
        }
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
