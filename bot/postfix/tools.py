"""Every command line mailqbot runs on a mail host: the one place they are written.

Each function returns a ``RemoteCommand`` (argv, whether it runs under ``sudo -n``, its own
time limit, whether it changes the queue) and checks its arguments before it builds
anything: queue IDs by ``is_queue_id``, queue names against the ones deploy/sudoers.mailqbot
allows, paths as plain absolute paths, domains by IDNA, times and offsets as integers. The
executor runs exactly this argv behind ``timeout``; nothing is ever put through a shell.

tests/helpers/all_commands.py calls each function here over its whole input domain, and the
least-privilege tests check that deploy/ allows every root command it yields and nothing
else; a function added here without a place there fails those tests.

The parsers of what these commands print live next to their subject: ``postfix`` (the
listing, ``postconf``, ``date``), ``postsuper``, ``postcat``, ``spool`` (``du``),
``logsource`` and ``maillog`` (the log), ``bot.diag.host`` (``posttls-finger`` and the
checks' ``postconf``).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from typing import Literal

from bot.errors import ParseError, UsageError
from bot.inventory import CONTAINER_NAME, SYSTEMD_UNIT, is_plain_path
from bot.postfix.filter import ascii_domain
from bot.postfix.models import is_queue_id
from bot.postfix.postfix import supports_json
from bot.remote.command import RemoteCommand

POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
POSTCAT = "/usr/sbin/postcat"
POSTCONF = "/usr/sbin/postconf"
POSTTLS_FINGER = "/usr/sbin/posttls-finger"
DATE = "/bin/date"
DU = "/usr/bin/du"
TAIL, HEAD, GREP = "/usr/bin/tail", "/usr/bin/head", "/bin/grep"
STAT, JOURNALCTL = "/usr/bin/stat", "/bin/journalctl"
CONTAINER_TOOLS = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}

# A queue listing may take minutes on a huge queue: the host's command_timeout decides
# (the executor applies the smaller of the two limits).
LISTING_TIMEOUT = 3600.0
# Deleting or moving 100k queue files takes well under a minute; the host's
# command_timeout still applies (the executor takes the smaller limit).
CHANGE_TIMEOUT = 600.0
DU_TIMEOUT = 30.0
CA_PATH = "/etc/ssl/certs"
RESOLV_BYTES = 4096
STATUS_FILTER = (GREP, "-a", "-F", " status=")  # keep status lines only, on the host

Change = Literal["purge", "hold", "release", "requeue"]
CHANGE_FLAGS: dict[Change, str] = {"purge": "-d", "hold": "-h", "release": "-H", "requeue": "-r"}
CHANGE_QUEUES = ("deferred", "hold", "incoming", "active")  # what deploy/sudoers.mailqbot allows
Parts = Literal["eh", "b"]
PARTS: tuple[Parts, ...] = ("eh", "b")  # -eh: envelope and headers; -b: the body

_PARAMETER = re.compile(r"[a-z0-9_]{1,64}")
_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")


# -- the queue --------------------------------------------------------------------------


def postqueue_json() -> RemoteCommand:
    """``postqueue -j``: the listing as JSON lines (Postfix >= 3.1)."""
    return RemoteCommand(argv=(POSTQUEUE, "-j"), remote_timeout=LISTING_TIMEOUT)


def postqueue_list() -> RemoteCommand:
    """``postqueue -p``: the listing as text (every version; the only one before 3.1)."""
    return RemoteCommand(argv=(POSTQUEUE, "-p"), remote_timeout=LISTING_TIMEOUT)


def queue_listing(mail_version: str) -> RemoteCommand:
    """The listing command that matches ``postfix.parser_for`` for this version."""
    return postqueue_json() if supports_json(mail_version) else postqueue_list()


def change(action: Change, queue: str, *, sudo: bool) -> RemoteCommand:
    """``[sudo -n] postsuper -d|-h|-H|-r - QUEUE``: the IDs come on standard input."""
    if queue not in CHANGE_QUEUES:
        raise UsageError(f"mailqbot changes messages only in {', '.join(CHANGE_QUEUES)}.")
    argv = (POSTSUPER, CHANGE_FLAGS[action], "-", queue)
    return RemoteCommand(argv=argv, sudo=sudo, remote_timeout=CHANGE_TIMEOUT, changes_queue=True)


def ids_input(queue_ids: list[str]) -> bytes:
    """Standard input for ``postsuper ... -``: one validated ID per line."""
    for queue_id in queue_ids:
        if not is_queue_id(queue_id):
            raise ValueError(f"refusing to send {queue_id!r} to postsuper: not a queue ID")
    return "".join(f"{q}\n" for q in queue_ids).encode()


def flush_all() -> RemoteCommand:
    """``postqueue -f``: try every deferred message now (no root needed)."""
    return RemoteCommand(argv=(POSTQUEUE, "-f"), remote_timeout=60.0, changes_queue=True)


def deliver(queue_id: str) -> RemoteCommand:
    """``postqueue -i ID``: try one message now."""
    if not is_queue_id(queue_id):
        raise UsageError("That is not a Postfix queue ID.")
    return RemoteCommand(argv=(POSTQUEUE, "-i", queue_id), remote_timeout=60.0, changes_queue=True)


def postcat(queue_id: str, parts: Parts, *, sudo: bool) -> RemoteCommand:
    """``postcat -eh -q ID`` (envelope records and headers) or ``postcat -b -q ID`` (the body).

    Only these two: ``show`` reads the body on its own, and deploy/sudoers.mailqbot allows
    exactly these.
    """
    if not is_queue_id(queue_id):
        raise UsageError(f"`{queue_id[:40]}` is not a Postfix queue ID.")
    if parts not in PARTS:
        raise ValueError(f"postcat parts must be one of {PARTS}, not {parts!r}")
    return RemoteCommand(argv=(POSTCAT, f"-{parts}", "-q", queue_id), sudo=sudo)


def deferred_disk_use(queue_directory: str, *, sudo: bool) -> RemoteCommand:
    """``[sudo -n] du -sk QUEUE_DIRECTORY/deferred``: the spool needs root to read."""
    if not _PATH.fullmatch(queue_directory):
        raise ValueError("queue_directory is not a plain absolute path")
    return RemoteCommand(
        argv=(DU, "-sk", f"{queue_directory}/deferred"), sudo=sudo, remote_timeout=DU_TIMEOUT
    )


# -- settings and the host --------------------------------------------------------------


def postconf_values(*names: str) -> RemoteCommand:
    """``postconf -h NAME...``: the values only, one per line, in the order asked."""
    _check_parameters(names)
    return RemoteCommand(argv=(POSTCONF, "-h", *names))


def postconf_version() -> RemoteCommand:
    return postconf_values("mail_version")


def postconf_expanded(*names: str) -> RemoteCommand:
    """``postconf -x NAME...``: ``name = value`` lines with ``$name`` expanded."""
    _check_parameters(names)
    return RemoteCommand(argv=(POSTCONF, "-x", *names), remote_timeout=15.0)


def postconf_services() -> RemoteCommand:
    """``postconf -P``: the per-service overrides (``-o``) of master.cf."""
    return RemoteCommand(argv=(POSTCONF, "-P"), remote_timeout=15.0)


def _check_parameters(names: tuple[str, ...]) -> None:
    if not names:
        raise UsageError("Name at least one Postfix parameter.")
    for name in names:
        if not _PARAMETER.fullmatch(name):
            raise UsageError("A Postfix parameter name uses only a-z, 0-9 and '_'.")


def utc_offset() -> RemoteCommand:
    """``date +%z``: the host's UTC offset now, for its year- and zone-less time stamps."""
    return RemoteCommand(argv=(DATE, "+%z"), remote_timeout=10)


def resolv_confs(queue_directory: str) -> RemoteCommand:
    """Both resolver files, each under a ``==> path <==`` header (``head`` with two files)."""
    if not _PATH.fullmatch(queue_directory):
        raise ValueError("queue_directory is not a plain absolute path")
    files = ("/etc/resolv.conf", f"{queue_directory}/etc/resolv.conf")
    return RemoteCommand(argv=(HEAD, "-c", str(RESOLV_BYTES), *files), remote_timeout=10.0)


def stat_file(path: str) -> RemoteCommand:
    """Size and change time of one file; never its content."""
    if not _PATH.fullmatch(path):
        raise ValueError("not a plain absolute path")
    return RemoteCommand(argv=(STAT, "-c", "%s %Y", "--", path), remote_timeout=10.0)


def checked_domain(domain: str) -> str | None:
    """The domain in lower-case ASCII (IDNA) form if it is a usable mail domain, else None."""
    ascii_form = ascii_domain(domain)
    if ascii_form is None or not _DOMAIN.fullmatch(ascii_form):
        return None
    return ascii_form


def probe(target: str, port: int | None, *, connect: int, command: int) -> RemoteCommand:
    """``posttls-finger`` to an IP address (``[addr]:port``) or a domain (MX lookup on the host).

    ``connect`` and ``command`` are its own connect and per-command timeouts (seconds).
    """
    if port is not None:
        if not 0 < port < 65536:
            raise ValueError("port out of range")
        where = f"[{ipaddress.ip_address(target)}]:{port}"  # ValueError unless an address
    else:
        domain = checked_domain(target)
        if domain is None:
            raise ValueError("not a valid domain")
        where = domain
    argv = (
        POSTTLS_FINGER,
        "-t",
        str(connect),
        "-T",
        str(command),
        "-m",
        "1",
        "-l",
        "may",
        "-P",
        CA_PATH,
        "-C",
        where,
    )
    return RemoteCommand(argv=argv, remote_timeout=float(connect + 4 * command))


# -- the mail log -----------------------------------------------------------------------


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
    return postconf_values("maillog_file")


def file_sizes(*paths: str) -> RemoteCommand:
    """``stat`` needs no root: only search permission on the directories (``/var/log`` has it)."""
    return RemoteCommand(argv=(STAT, "-L", "-c", "%s %n", *map(log_path, paths)), remote_timeout=10)


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
    stderr comes on the command's stderr, unfiltered: see ``logsource.split_container_stderr``."""
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
