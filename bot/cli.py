"""``mailqbot``: serve, console, check-config, migrate, prune, audit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot import logs, onboard
from bot.errors import MailqbotError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailqbot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailqbot",
        description="Postfix queue operations from Slack or the terminal.",
        epilog="Examples: mailqbot console --demo | mailqbot console 'summary mx1' | "
        "mailqbot serve --port 3000 | mailqbot check-config mailqbot.toml",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"mailqbot {_version()}")
    parser.add_argument(
        "--log-json",
        action="store_true",
        help="log JSON lines (default: $MAILQBOT_LOG_FORMAT, text unless it says json)",
    )
    parser.add_argument(
        "--log-levels",
        metavar="LOGGER=LEVEL,...",
        help="levels per logger, e.g. bot=debug,asyncssh=warning (default: $MAILQBOT_LOG_LEVELS)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN)")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP mode: address to bind")
    serve.add_argument("--port", type=int, default=3000, help="HTTP mode: port (/slack/events)")
    serve.add_argument(
        "--metrics-host",
        help="address of the Prometheus /metrics listener (default: $MAILQBOT_METRICS_HOST, "
        "else 127.0.0.1)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="its port, 0 for none (default: $MAILQBOT_METRICS_PORT, else 9464)",
    )
    console = sub.add_parser("console", help="run commands in the terminal")
    console.add_argument("--demo", action="store_true", help="start built-in demo hosts")
    console.add_argument("words", nargs="*", help='one command to run, e.g. "summary mx1"')
    check = sub.add_parser("check-config", help="validate the config file and explain errors")
    check.add_argument("path", nargs="?", type=Path, help="default: $MAILQBOT_CONFIG")
    onboard.add_parsers(sub)
    sub.add_parser(
        "reload", help="make the running `mailqbot serve` read its config again (SIGHUP)"
    )
    sub.add_parser("migrate", help="bring the database (DATABASE_URL) to the current schema")
    prune = sub.add_parser(
        "prune", help="apply [retention]: downsample old queue samples, delete old runs and plans"
    )
    prune.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    prune.add_argument(
        "--full", action="store_true", help="re-read every sample tier (after [retention] changed)"
    )
    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify", help="check the keyed hash chain and its checkpoint; name the first bad row"
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        help="a checkpoint file (default: MAILQBOT_AUDIT_CHECKPOINT or STATE_DIR/audit.head); "
        "repeat for each replica's file",
    )
    export = audit_sub.add_parser("export", help="write the audit trail as CSV or JSON lines")
    export.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    export.add_argument("--since", help="30m, 24h, 7d or an ISO date/time (default: all)")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = args.cmd in {
        "console", "check-config", "audit", "hosts", "doctor", "init", "reload", "prune",
    }  # fmt: skip
    from bot.settings import load_settings  # after --help: reading settings costs time

    try:
        settings = load_settings()
        logs.setup(
            logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
            json_lines=args.log_json or settings.log_format == "json",
            levels=settings.log_levels if args.log_levels is None else args.log_levels,
        )
        return asyncio.run(_dispatch(args, settings))
    except MailqbotError as exc:
        print(f"mailqbot: {exc.user_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.cmd == "hosts":
        return await onboard.hosts_scan(args, settings.config_path)
    if args.cmd == "doctor":
        return await onboard.doctor(args, settings.config_path)
    if args.cmd == "init":
        return onboard.init(args)
    if args.cmd == "reload":
        from bot.app.reload import send_reload

        status, message = send_reload(settings)
        print(message, file=sys.stderr if status else sys.stdout)
        return status
    if args.cmd == "check-config":
        return _check_config(args.path or settings.config_path)
    if args.cmd == "migrate":
        from bot.db.migrate import upgrade_async
        from bot.db.session import check_reachable, make_engine

        engine = make_engine(settings.database_url)
        try:
            await check_reachable(engine, settings.database_url)  # one line if it is not
        finally:
            await engine.dispose()
        await upgrade_async(settings.database_url)
        print("database is at the current schema")
        return 0
    if args.cmd == "prune":
        from bot.maintenance import prune_command

        return await prune_command(settings, args.dry_run, args.full)
    if args.cmd == "audit" and args.audit_cmd == "export":
        return await _audit_export(args, settings)
    if args.cmd == "audit":
        return await _audit_verify(settings, args.checkpoint)
    if args.cmd == "console":
        return await _console(args, settings)
    return await _serve(args, settings)


STOP_WITHIN = 10.0  # seconds a stop signal leaves for a clean shutdown


def _stopper(
    sig: signal.Signals, stop: asyncio.Event, loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    """The first signal asks for a clean stop; a second one, or ``STOP_WITHIN`` seconds
    later, ends the process at once (work in flight is lost, the leases expire)."""

    def handle() -> None:
        if stop.is_set():
            _exit_now(sig)
        log.info("%s: stopping", sig.name)
        stop.set()
        loop.call_later(STOP_WITHIN, _exit_now, sig)

    return handle


def _exit_now(sig: signal.Signals) -> None:
    print(
        f"mailqbot: {sig.name}: not stopped within {STOP_WITHIN:g}s, exiting now", file=sys.stderr
    )
    sys.stderr.flush()
    os._exit(128 + sig.value)


def _check_config(path: Path) -> int:
    from bot.errors import short_list
    from bot.inventory import Inventory, load_config

    inventory = Inventory(load_config(path, deployed=True, slack=True))
    groups = short_list(list(inventory.groups)) or "none"
    print(
        f"{path}: OK: {len(inventory.names)} host(s) ({short_list(inventory.names)}); "
        f"groups: {groups}"
    )
    return 0


async def _audit_verify(settings: Settings, checkpoints: list[Path] | None) -> int:
    from bot.db.session import make_engine, make_sessionmaker
    from bot.stores import audit
    from bot.stores.audit_key import AuditTrail, checkpoint_path, read_checkpoint

    trail = AuditTrail.from_settings(settings, create=False)
    paths = checkpoints or [checkpoint_path(settings)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(
            f"audit checkpoint {missing[0]} not found: without it, rows removed from the end "
            "of the chain cannot be found. Name the file with --checkpoint (or "
            "MAILQBOT_AUDIT_CHECKPOINT)."
        )
        return 1
    heads = [head for path in paths for head in read_checkpoint(path)]
    engine = make_engine(settings.database_url)
    try:
        result = await audit.verify(make_sessionmaker(engine, trail), heads)
    finally:
        await engine.dispose()
    if result.ok:
        print(
            f"audit chain OK: {result.rows:,} event(s); "
            f"{result.checkpoints:,} checkpointed head(s) match"
        )
        return 0
    where = f"at row id {result.first_bad_id}" if result.first_bad_id is not None else "at its end"
    print(
        f"audit chain BROKEN {where}: {result.problem} "
        f"({result.rows:,} event(s) before it verified)"
    )
    return 1


async def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from bot.db.session import make_engine, make_sessionmaker
    from bot.stores import audit

    since = audit.since_start(args.since, datetime.now(UTC)) if args.since else None
    engine = make_engine(settings.database_url)
    try:
        with _output(args.output) as out:
            count = await audit.export(make_sessionmaker(engine), out, args.format, since)
    finally:
        await engine.dispose()
    print(f"exported {count:,} audit event(s) as {args.format}", file=sys.stderr)
    return 0


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        yield out


async def _console(args: argparse.Namespace, settings: Settings) -> int:
    from bot import console
    from bot.app.runtime import open_services

    if args.demo:
        from bot.demo import demo_services

        async with demo_services() as services:
            return await console.main(services, args.words)
    async with open_services(settings) as services:
        return await console.main(services, args.words)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app.reload import on_sighup
    from bot.app.runtime import open_services
    from bot.app.services import LiveServices
    from bot.slack.serve import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stopper(sig, stop, loop))
    metrics_host = args.metrics_host or settings.metrics_host
    metrics_port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    metrics_at = (metrics_host, metrics_port) if metrics_port else None
    async with open_services(settings, slack=True) as services:
        live = LiveServices(services)
        async with on_sighup(live):
            await serve(live, args.host, args.port, stop, metrics_at)
    return 0
