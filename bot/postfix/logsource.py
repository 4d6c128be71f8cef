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
from datetime import UTC, datetime
from typing import Literal

from bot.errors import ParseError, UsageError
from bot.inventory import CONTAINER_NAME, SYSTEMD_UNIT, is_plain_path
from bot.postfix import postfix
from bot.remote.command import RemoteCommand

TAIL, HEAD, GREP = "/usr/bin/tail", "/usr/bin/head", "/bin/grep"
STAT, JOURNALCTL = "/usr/bin/stat", "/bin/journalctl"
CONTAINER_TOOLS = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}
SYSLOG_FILES = ("/var/log/mail.log", "/var/log/maillog")  # Debian/Ubuntu, RHEL/SUSE
STATUS_FILTER = (GREP, "-a", "-F", " status=")  # keep status lines only, on the host
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


def log_path(value: str) -> str:
    """A log file path (from the host's ``postconf -h maillog_file``), checked before use."""
    path = value.strip()
    if not is_plain_path(path):
        raise ParseError(
            f"The mail log path `{path[:200]}` (postconf maillog_file) is not a plain absolute "
            "file path, so mailqbot will not read it. Set maillog_file to a path such as "
            "/var/log/postfix.log."
        )
    if path.startswith(("/dev/", "/proc/")):
        raise UsageError(
            f"Postfix logs to `{path}` (maillog_file), not to a file mailqbot can read. Point "
            "maillog_file at a file (e.g. /var/log/postfix.log), log through syslog, or, in a "
            'container, set `source = "container"` for this host\'s group in [log].'
        )
    return path


def maillog_file_setting() -> RemoteCommand:
    return postfix.postconf_values("maillog_file")


def file_sizes(*paths: str) -> RemoteCommand:
    """``stat`` needs no root: only search permission on the directories (``/var/log`` has it)."""
    return RemoteCommand(argv=(STAT, "-L", "-c", "%s %n", *map(log_path, paths)), remote_timeout=10)


def parse_sizes(stdout: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in stdout.splitlines():
        size, _, path = line.partition(" ")
        if size.isdigit() and path:
            sizes[path] = int(size)
    return sizes


def read_file(path: str, start: int, length: int, *, sudo: bool, timeout: float) -> RemoteCommand:
    """Bytes ``[start, start + length)`` of the log, status lines only (filtered on the host).

    The sudoers rule allows ``tail -c +N FILE``; ``head`` and ``grep`` run unprivileged. The
    exit status is grep's (1: no line matched): check stderr, not the status.
    """
    if start < 0 or length < 0:
        raise ValueError("negative offset or length")
    return RemoteCommand(
        argv=(TAIL, "-c", f"+{start + 1}", log_path(path)),
        sudo=sudo,
        remote_timeout=timeout,
        pipe_to=((HEAD, "-c", str(length)), STATUS_FILTER),
    )


def probe_file(path: str, start: int, length: int, *, sudo: bool) -> RemoteCommand:
    """Up to ``length`` bytes from ``start``: enough to see the first whole line there."""
    if start < 0 or length <= 0:
        raise ValueError("negative offset or empty probe")
    return RemoteCommand(
        argv=(TAIL, "-c", f"+{start + 1}", log_path(path)),
        sudo=sudo,
        remote_timeout=10,
        pipe_to=((HEAD, "-c", str(length)),),
    )


def read_journal(
    since: int, until: int, *, unit: str = "", sudo: bool, timeout: float
) -> RemoteCommand:
    """Status lines from the journal between two epoch seconds: the mail facility, or the
    lines of one systemd unit (``_SYSTEMD_UNIT=``, an exact match: no globbing)."""
    if not 0 <= since <= until:
        raise ValueError("bad journal window")
    if unit and not SYSTEMD_UNIT.fullmatch(unit):
        raise ValueError("not a systemd service unit name")
    match = f"_SYSTEMD_UNIT={unit}" if unit else "SYSLOG_FACILITY=2"
    argv = (JOURNALCTL, match, f"--since=@{since}", f"--until=@{until}")
    return RemoteCommand(
        argv=(*argv, "-o", "short-iso-precise", "--no-pager", "-q"),
        sudo=sudo,
        remote_timeout=timeout,
        pipe_to=(STATUS_FILTER,),
    )


def read_container(
    runtime: str, container: str, since: int, until: int, *, sudo: bool, timeout: float
) -> RemoteCommand:
    """Status lines a container logged between two epoch seconds, each line prefixed with
    the runtime's RFC 3339 UTC stamp (``--timestamps``). What the container wrote to its
    stderr comes on the command's stderr, unfiltered: see ``split_container_stderr``."""
    if not 0 <= since <= until:
        raise ValueError("bad container log window")
    if runtime not in CONTAINER_TOOLS or not CONTAINER_NAME.fullmatch(container):
        raise ValueError("unknown container runtime or bad container name")
    argv = (CONTAINER_TOOLS[runtime], "logs", "--timestamps")
    return RemoteCommand(
        argv=(*argv, f"--since={_rfc3339(since)}", f"--until={_rfc3339(until)}", container),
        sudo=sudo,
        remote_timeout=timeout,
        pipe_to=(STATUS_FILTER,),
    )


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
