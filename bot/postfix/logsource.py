"""Where a host's Postfix log is, and the fixed command templates that read it.

Four kinds of source (``[log]`` in the config, per host group; see ``bot.inventory``):

- ``auto`` (the default): ``postconf -h maillog_file``; if empty (syslog), the first of
  ``SYSLOG_FILES`` that ``stat`` finds; if neither, the journal's mail facility.
- ``file``: a configured path (e.g. a log shipper's copy, or ``docker compose logs`` saved
  to a file).
- ``journal``: ``journalctl``, the mail facility or one unit's lines (``_SYSTEMD_UNIT=``).
- ``container``: ``docker logs`` / ``podman logs`` of one container (Postfix logging to
  ``/dev/stdout``, as ``MAILLOG_README`` suggests for containers).

A file is read from a byte offset (``tail -c +N``); the journal and containers are asked for
the window by time. Every read is filtered on the host (``grep -F ' status='``) so only
status lines cross the network. Every argument is checked here: paths by
``is_plain_path``, units and container names by the config's patterns, times are integers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SYSLOG_FILES = ("/var/log/mail.log", "/var/log/maillog")  # Debian/Ubuntu, RHEL/SUSE
Kind = Literal["file", "journal", "container"]


@dataclass(frozen=True)
class LogTarget:
    """A source found on a host: a file with its size when ``stat`` looked, the journal (the
    mail facility, or ``unit``), or a container (``runtime`` and ``container``)."""

    kind: Kind
    path: str = ""
    size: int = 0
    unit: str = ""
    runtime: str = ""
    container: str = ""

    @property
    def label(self) -> str:
        if self.kind == "file":
            return self.path
        if self.kind == "journal":
            return f"the journal (unit {self.unit})" if self.unit else "the journal (mail facility)"
        return f"{self.runtime} logs of container {self.container}"


def parse_sizes(stdout: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in stdout.splitlines():
        size, _, path = line.partition(" ")
        if size.isdigit() and path:
            sizes[path] = int(size)
    return sizes


_DROPPED = re.compile(r"\[first \d+ bytes of stderr dropped\]")  # bot.remote.ssh's note


def split_container_stderr(stderr: str) -> tuple[str, str, bool]:
    """(the container's own stderr lines, the tool's errors, whether the start of stderr was
    dropped) from ``read_container``'s stderr.

    ``docker logs`` passes on what the container wrote to stderr as its own stderr; with
    ``--timestamps`` each such line starts with a stamp (``2026-11-28T10:00:00.1Z ...``),
    which the tool's own messages (``Error response from daemon: ...``) never do. The
    executor keeps only the end of a long stderr and says so in its first line.
    """
    logged: list[str] = []
    errors: list[str] = []
    lines = stderr.splitlines()
    dropped = bool(lines) and _DROPPED.fullmatch(lines[0]) is not None
    for line in lines[dropped:]:
        (logged if _starts_with_stamp(line) else errors).append(line)
    return "\n".join(logged), "\n".join(errors), dropped


def _starts_with_stamp(line: str) -> bool:
    head = line[:20]
    return len(head) == 20 and head[4] == "-" and head[10] == "T" and head[:4].isdigit()
