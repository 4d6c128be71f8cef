"""``mailqbot``: serve, console, check-config, migrate, prune, audit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.errors import MailqbotError

if TYPE_CHECKING:
    from bot.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailqbot",
        description="Postfix queue operations from Slack or the terminal.",
        epilog="Examples: mailqbot console --demo | mailqbot console 'summary mx1' | "
        "mailqbot serve --port 3000 | mailqbot check-config mailqbot.toml",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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
    quiet = args.cmd in {"console", "check-config", "audit", "prune"}
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for noisy in ("asyncssh", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from bot.settings import load_settings  # after --help: pydantic-settings costs ~0.1 s

    try:
        return asyncio.run(_dispatch(args, load_settings()))
    except MailqbotError as exc:
        print(f"mailqbot: {exc.user_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.cmd == "check-config":
        return _check_config(args.path or settings.config_path)
    if args.cmd == "migrate":
        from bot.db.migrate import upgrade_async

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


def _check_config(path: Path) -> int:
    from bot.inventory import Inventory, load_config

    inventory = Inventory(load_config(path))
    groups = ", ".join(inventory.groups) or "none"
    print(
        f"{path}: OK: {len(inventory.names)} host(s) ({', '.join(inventory.names)}); "
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
    from bot.app.runtime import open_services
    from bot.slack.serve import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics_host = args.metrics_host or settings.metrics_host
    metrics_port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    metrics_at = (metrics_host, metrics_port) if metrics_port else None
    async with open_services(settings) as services:
        await serve(services, args.host, args.port, stop, metrics_at)
    return 0
