"""Logging set-up: text or JSON lines, and a level per logger.

``MAILQBOT_LOG_FORMAT=json`` (or ``--log-json``) writes one JSON object a line: ``time``,
``level``, ``logger``, ``message``, and the fields a record carries (``host``,
``request_id``, ``reason``, ``user``, ``command``). ``MAILQBOT_LOG_LEVELS`` (or
``--log-levels``) sets levels per logger, e.g. ``bot=debug,asyncssh=warning``: our own
code at debug without the drivers' noise. Unnamed loggers keep the default level.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.errors import ConfigError

# Fields a record may carry (``extra=``) that JSON lines show as their own keys.
FIELDS = ("host", "request_id", "reason", "user", "command", "scope")
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# Drivers whose INFO lines drown ours unless asked for.
QUIET = {"asyncssh": logging.WARNING, "alembic": logging.WARNING}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {k: getattr(record, k) for k in FIELDS if getattr(record, k, None) is not None}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def parse_levels(text: str) -> dict[str, int]:
    """``bot=debug,asyncssh=warning`` -> logger name to level; ``ConfigError`` if malformed."""
    levels: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, level = part.partition("=")
        if not eq or not name.strip() or level.strip().lower() not in LEVELS:
            raise ConfigError(
                f"MAILQBOT_LOG_LEVELS: {part[:40]!r} is not LOGGER=LEVEL; write e.g. "
                f"bot=debug,asyncssh=warning (levels: {', '.join(LEVELS)})."
            )
        levels[name.strip()] = LEVELS[level.strip().lower()]
    return levels


def setup(
    default: int, *, json_lines: bool = False, levels: str = "", stream: TextIO | None = None
) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonLines()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(default)
    wanted = parse_levels(levels)
    for name, level in QUIET.items():
        if default > logging.DEBUG or name in wanted:
            logging.getLogger(name).setLevel(max(level, default))
    for name, level in wanted.items():
        logging.getLogger(name).setLevel(level)
