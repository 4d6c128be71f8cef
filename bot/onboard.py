"""The onboarding commands of ``mailqbot``: ``hosts scan``, ``doctor`` and ``init``.

Each loads the inventory itself (no database, no Slack), works on ``HOST``, ``GROUP`` or
``all``, prints one aligned table, and returns the process's exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.inventory import Host

PROGRESS_FROM = 10  # hosts: a progress bar on a terminal from this many


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = sub.add_parser("hosts", help="host keys: scan, show fingerprints, pin them")
    hosts_sub = hosts.add_subparsers(dest="hosts_cmd", required=True, metavar="ACTION")
    scan = hosts_sub.add_parser(
        "scan",
        help="fetch host keys and print their SHA256 fingerprints; --accept writes new ones "
        "to known_hosts",
    )
    scan.add_argument("target", help="a host, a group, or all")
    scan.add_argument("--accept", action="store_true", help="pin new keys in known_hosts")
    scan.add_argument(
        "--replace",
        action="store_true",
        help="with --accept: replace a CHANGED key (shows old and new); check it first",
    )
    scan.add_argument("--config", type=Path, help="default: $MAILQBOT_CONFIG")
    doctor = sub.add_parser(
        "doctor",
        help="check each host is ready: login, sudo rules, Postfix, time zone, spool, mail log",
    )
    doctor.add_argument("target", help="a host, a group, or all")
    doctor.add_argument("--config", type=Path, help="default: $MAILQBOT_CONFIG")
    init = sub.add_parser(
        "init",
        help="write a sample config, the sudoers snippet, the forced-command wrapper and a "
        "systemd unit into DIR",
    )
    init.add_argument("directory", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite files that exist")


def _hosts(args: argparse.Namespace, default_config: Path) -> list[Host]:
    from bot.inventory import Inventory, load_config  # not for --help

    return Inventory(load_config(args.config or default_config)).select(args.target)


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal and there are many hosts."""
    if total < PROGRESS_FROM or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)

        def advance(done: int, _total: int) -> None:
            bar.update(task, completed=done)

        yield advance


async def hosts_scan(args: argparse.Namespace, default_config: Path) -> int:
    from bot.remote import hostkeys

    if args.replace and not args.accept:
        print("--replace only works with --accept: nothing was written", file=sys.stderr)
        return 2
    hosts = _hosts(args, default_config)
    with progress_bar(len(hosts), "scanning host keys") as progress:
        report = await hostkeys.scan_and_pin(
            hosts, accept=args.accept, replace=args.replace, progress=progress
        )
    print(hostkeys.render(report))
    return hostkeys.exit_status(report)


async def doctor(args: argparse.Namespace, default_config: Path) -> int:
    from bot import doctor as checks

    hosts = _hosts(args, default_config)
    with progress_bar(len(hosts), "checking hosts") as progress:
        reports = await checks.check_hosts(hosts, progress=progress)
    print(checks.render(reports))
    return 0 if all(r.ready for r in reports) else 1


def init(args: argparse.Namespace) -> int:
    from bot import init_files

    return init_files.write(args.directory, force=args.force)
