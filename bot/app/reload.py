"""Reload the inventory without a restart: SIGHUP to ``mailqbot serve``, or ``mailqbot reload``.

``mailqbot serve`` writes its pid to ``STATE_DIR/mailqbot.pid`` and reloads the config file
on SIGHUP. A config that fails validation changes nothing: the old inventory stays, and the
log says why. Work in flight is not dropped: each request runs on its own snapshot of the
services (``LiveServices.now()``), so a summary that started before the reload finishes on
the inventory it started with; requests after it see the new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.app.services import LiveServices
from bot.errors import MailqbotError, short_list
from bot.inventory import Inventory, load_config
from bot.settings import Settings

log = logging.getLogger(__name__)
PID_FILE = "mailqbot.pid"


def pid_path(settings: Settings) -> Path:
    return settings.state_dir / PID_FILE


async def reload_inventory(live: LiveServices) -> bool:
    """Load the config again and swap the inventory in; False (and logged) if it is invalid."""
    path = live.now().settings.config_path
    old = live.now().inventory
    try:
        new = await asyncio.to_thread(
            lambda: Inventory(load_config(path, deployed=True, slack=True))
        )
    except MailqbotError as exc:
        log.error(
            "reload of %s refused, keeping the inventory of %d host(s): %s",
            path, len(old.names), exc.user_message,
        )  # fmt: skip
        return False
    added = sorted(set(new.names) - set(old.names))
    removed = sorted(set(old.names) - set(new.names))
    live.update(inventory=new)
    log.info(
        "reloaded %s: %d host(s); added %s; removed %s",
        path, len(new.names), short_list(added) or "none", short_list(removed) or "none",
    )  # fmt: skip
    return True


@asynccontextmanager
async def on_sighup(live: LiveServices) -> AsyncIterator[None]:
    """While open: SIGHUP reloads the inventory, and the pid file names this process."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[bool]] = set()

    def hup() -> None:
        task = asyncio.create_task(reload_inventory(live), name="reload inventory")
        running.add(task)
        task.add_done_callback(running.discard)

    path = pid_path(live.now().settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n", encoding="ascii")
    loop.add_signal_handler(signal.SIGHUP, hup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await asyncio.gather(*running, return_exceptions=True)
        if _read_pid(path) == os.getpid():
            path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def send_reload(settings: Settings) -> tuple[int, str]:
    """``mailqbot reload``: check the config here first, as the running bot will (its files
    readable, some grant given), then SIGHUP it. Returns the exit status and what to print."""
    try:
        inventory = Inventory(load_config(settings.config_path, deployed=True, slack=True))
    except MailqbotError as exc:
        return 1, f"{exc.user_message}\nNot reloaded: the running bot keeps its inventory."
    path = pid_path(settings)
    pid = _read_pid(path)
    if pid is None:
        return 1, (
            f"no running `mailqbot serve` found: {path} is missing or unreadable. Start the "
            "bot, or set MAILQBOT_STATE_DIR to the one it runs with."
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return 1, f"{path} names pid {pid}, which is not running: start the bot."
    except PermissionError:
        return 1, f"not allowed to signal pid {pid} ({path}): run as the bot's user."
    return 0, (
        f"asked mailqbot serve (pid {pid}) to reload {settings.config_path}: "
        f"{len(inventory.names)} host(s). Its log says whether it did."
    )
