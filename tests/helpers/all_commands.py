"""Every remote command mailqbot can build, derived from its template functions.

``BUILDERS`` maps each template function (each function in ``bot/`` and ``commands/`` that
creates a ``RemoteCommand``: ``template_functions()`` finds them in the source, and
tests/security/test_least_privilege.py checks that the two lists agree) to the commands it
builds over its whole input domain: every action, queue, part and sudo setting, and sample
values for the open-ended inputs (queue IDs, offsets, lengths, times, paths, targets).

``built_by_the_code`` answers whether a given root command is one of them, and
``NEVER_AS_ROOT`` lists root commands the bot never runs, which deploy/ must refuse.

The host layout the shipped files in deploy/ expect: ``queue_directory`` is
``/var/spool/postfix`` and the mail log is one of ``LOG_FILES``. Elsewhere the operator edits
those paths in the files, as their comments say.

``command_lines()`` renders each command as the executor sends it: behind
``timeout -k 5 N [sudo -n]``, with ``N`` the template's own limit or a smaller host
``command_timeout``.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
from calendar import timegm
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from bot import doctor
from bot.diag import host as diag
from bot.errors import MailqbotError
from bot.postfix import logsource, spool, tools
from bot.remote.command import RemoteCommand

ROOT = Path(__file__).resolve().parents[2]
SUDO = (True, False)
QUEUE_DIRECTORY = "/var/spool/postfix"
LOG_FILES = ("/var/log/postfix.log", *logsource.SYSLOG_FILES)
QUEUE_IDS = (
    "ABCDEF",  # the shortest short form
    "4B7D3C1A2B",
    "0123456789ABCDEF01234567",  # the longest
    "3Tq0Zd4bXxzJk",  # long form (enable_long_queue_ids)
    "zzzzzzzzzzzzzzzzz1",  # long form whose seconds part ends in z: the last z separates
    "BCDFGHJKLMNPQRSTz0123456789BCDF",
)
OFFSETS = (0, 1, 16_383, 1_048_576, 10**12)
LENGTHS = (1, 16_384, 10**12)
HOST_TIMEOUTS = (0.5, 1.0, 10.0, 60.0, 3600.0)  # ssh.command_timeout caps the template's limit
PARAMETERS = (("mail_version",), ("maillog_file",), spool.SETTINGS, ("a", "b_2", "z" * 64))
PROBE_TARGETS = (
    ("127.0.0.1", 25),
    ("192.0.2.7", 587),
    ("2001:db8::1", 25),
    ("::ffff:192.0.2.1", 465),
    ("example.com", None),
    ("mx-1.sub.example-test.org", None),
    ("xn--bcher-kva.example", None),
)
# Time windows (epoch seconds) of the journal and container reads: empty, one second, a day,
# across a leap day, and the last second a container's RFC 3339 time can name.
WINDOWS = (
    (0, 0),
    (0, 1),
    (1_795_000_000, 1_795_086_401),
    (951_782_399, 951_868_800),  # 2000-02-28T23:59:59Z to 2000-03-01T00:00:00Z
    (253_402_300_799, 253_402_300_799),  # 9999-12-31T23:59:59Z
)
UNITS = (  # the journal of the mail facility (""), or of one systemd service unit
    "",
    "postfix.service",
    "postfix@-.service",
    "postfix@postfix-out.service",
    "mail:relay_1.service",
    "-.service",
    "a" * 200 + ".service",  # the longest name SYSTEMD_UNIT takes
)
CONTAINERS = (
    "postfix",
    "mail-postfix-1",
    "Mail_Postfix.2",
    "0",
    "3f2a9c1b7d4e",  # a container ID
    "p" + "-" * 127,  # the longest name CONTAINER_NAME takes
)
PATHS = ("/etc/postfix/sasl_passwd.db", "/etc/postfix/sasl/passwd.lmdb", "/srv/x+y/a_b-c.cdb")


def _changes() -> Iterator[RemoteCommand]:
    for action, queue, sudo in itertools.product(get_args(tools.Change), tools.CHANGE_QUEUES, SUDO):
        yield tools.change(action, queue, sudo=sudo)


def _postcat() -> Iterator[RemoteCommand]:
    for queue_id, parts, sudo in itertools.product(QUEUE_IDS, tools.PARTS, SUDO):
        yield tools.postcat(queue_id, parts, sudo=sudo)


def _read_file() -> Iterator[RemoteCommand]:
    for path, start, length, sudo in itertools.product(LOG_FILES, OFFSETS, (0, *LENGTHS), SUDO):
        yield tools.read_file(path, start, length, sudo=sudo, timeout=600.0)


def _probe_file() -> Iterator[RemoteCommand]:
    for path, start, sudo in itertools.product(LOG_FILES, OFFSETS, SUDO):
        yield tools.probe_file(path, start, 16_384, sudo=sudo)


def _read_journal() -> Iterator[RemoteCommand]:
    for unit, (since, until), sudo in itertools.product(UNITS, WINDOWS, SUDO):
        yield tools.read_journal(since, until, unit=unit, sudo=sudo, timeout=600.0)


def _read_container() -> Iterator[RemoteCommand]:
    for runtime, name, (since, until), sudo in itertools.product(
        tools.CONTAINER_TOOLS, CONTAINERS, WINDOWS, SUDO
    ):
        yield tools.read_container(runtime, name, since, until, sudo=sudo, timeout=600.0)


def _disk_use() -> Iterator[RemoteCommand]:
    for sudo in SUDO:
        yield tools.deferred_disk_use(QUEUE_DIRECTORY, sudo=sudo)


def _probes() -> Iterator[RemoteCommand]:
    for (target, port), connect, command in itertools.product(PROBE_TARGETS, (1, 4), (1, 2)):
        yield tools.probe(target, port, connect=connect, command=command)


BUILDERS: dict[Callable[..., RemoteCommand], Callable[[], Iterator[RemoteCommand]]] = {
    tools.change: _changes,
    tools.flush_all: lambda: iter([tools.flush_all()]),
    tools.deliver: lambda: map(tools.deliver, QUEUE_IDS),
    tools.postcat: _postcat,
    tools.postqueue_json: lambda: iter([tools.postqueue_json()]),
    tools.postqueue_list: lambda: iter([tools.postqueue_list()]),
    tools.postconf_values: lambda: (tools.postconf_values(*n) for n in PARAMETERS),
    tools.deferred_disk_use: _disk_use,
    tools.utc_offset: lambda: iter([tools.utc_offset()]),
    tools.file_sizes: lambda: (
        tools.file_sizes(*paths) for paths in ((LOG_FILES[0],), logsource.SYSLOG_FILES)
    ),
    tools.read_file: _read_file,
    tools.probe_file: _probe_file,
    tools.read_journal: _read_journal,
    tools.read_container: _read_container,
    tools.probe: _probes,
    tools.postconf_expanded: lambda: iter([tools.postconf_expanded(*diag.SETTINGS)]),
    tools.postconf_services: lambda: iter([tools.postconf_services()]),
    tools.resolv_confs: lambda: map(tools.resolv_confs, (QUEUE_DIRECTORY, "/srv/postfix-spool")),
    tools.stat_file: lambda: map(tools.stat_file, PATHS),
}
# Sent only to hosts with ``sudo = true`` (no forced-command wrapper there), by
# ``mailqbot doctor``: ``sudo -n -l`` about each root command, which runs nothing.
SUDO_HOST_BUILDERS: dict[Callable[..., RemoteCommand], Callable[[], Iterator[RemoteCommand]]] = {
    doctor.sudo_list: lambda: (doctor.sudo_list(c.argv) for c in root_commands()),
}


def all_commands() -> list[RemoteCommand]:
    """Every command of every template over its domain (duplicates removed, order kept)."""
    seen: dict[RemoteCommand, None] = {}
    for commands in BUILDERS.values():
        seen.update(dict.fromkeys(commands()))
    return list(seen)


def root_commands() -> list[RemoteCommand]:
    """The commands a host with ``sudo = true`` runs under ``sudo -n``."""
    return [command for command in all_commands() if command.sudo]


def root_tools() -> set[str]:
    """The programs mailqbot runs as root (the first word of each root command)."""
    return {command.argv[0] for command in root_commands()}


def command_lines() -> Iterator[tuple[RemoteCommand, str]]:
    """(command as sent, its line): each command at its own time limit and at a host's.

    The executor sends ``min(template limit, host command_timeout)``; the host limits go
    round the commands, so every limit meets every kind of command line.
    """
    for i, command in enumerate(all_commands()):
        capped = [t for t in HOST_TIMEOUTS if t < command.remote_timeout]
        limits = [command.remote_timeout] + ([capped[i % len(capped)]] if capped else [])
        for limit in limits:
            sent = dataclasses.replace(command, remote_timeout=limit)
            yield sent, sent.command_line()


def template_functions() -> set[str]:
    """``module.function`` of every function in bot/ and commands/ that calls RemoteCommand."""
    found: set[str] = set()
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "commands").rglob("*.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _builds(node):
                found.add(f"{module}.{node.name}")
    return found


def _builds(function: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "RemoteCommand"
        for node in ast.walk(function)
    )


def qualified(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


JOURNAL = ("/bin/journalctl", "SYSLOG_FACILITY=2", "--since=@0", "--until=@1")
UNIT = "_SYSTEMD_UNIT=postfix.service"
OUTPUT = ("-o", "short-iso-precise", "--no-pager", "-q")
DOCKER, PODMAN = tools.CONTAINER_TOOLS["docker"], tools.CONTAINER_TOOLS["podman"]
LOGS = ("logs", "--timestamps", "--since=2026-11-28T10:00:00Z", "--until=2026-11-28T11:00:00Z")
# Root commands mailqbot never runs: each must be refused by the sudoers rules and the wrapper.
NEVER_AS_ROOT: list[tuple[str, ...]] = [
    ("/usr/sbin/postsuper", "-d", "ALL", "deferred"),
    ("/usr/sbin/postsuper", "-d", "ALL"),
    ("/usr/sbin/postsuper", "-d", "4B7D3C1A2B"),
    ("/usr/sbin/postsuper", "-d", "4B7D3C1A2B", "deferred"),
    ("/usr/sbin/postsuper", "-h", "4B7D3C1A2B", "deferred"),
    ("/usr/sbin/postsuper", "-d", "-"),
    ("/usr/sbin/postsuper", "-d", "-", "corrupt"),
    ("/usr/sbin/postsuper", "-d", "-", "maildrop"),
    ("/usr/sbin/postsuper", "-d", "-", "deferred", "hold"),
    ("/usr/sbin/postsuper", "-s"),
    ("/usr/sbin/postsuper", "-p"),
    ("/usr/sbin/postsuper", "-c", "/tmp", "-d", "-", "deferred"),
    ("/usr/sbin/postcat", "-q", "4B7D3C1A2B"),
    ("/usr/sbin/postcat", "-beh", "-q", "4B7D3C1A2B"),
    ("/usr/sbin/postcat", "-he", "-q", "4B7D3C1A2B"),
    ("/usr/sbin/postcat", "-eh", "-q", "ALL"),
    ("/usr/sbin/postcat", "-eh", "-q", "4b7d3c1a2b"),
    ("/usr/sbin/postcat", "-eh", "-q", "4B7D3C1A2B", "4B7D3C1A2C"),
    ("/usr/sbin/postcat", "-eh", "/var/spool/postfix/deferred/4/4B7D3C1A2B"),
    ("/usr/sbin/postcat", "-c", "/tmp", "-eh", "-q", "4B7D3C1A2B"),
    ("/usr/bin/tail", "-n", "100", "/var/log/postfix.log"),
    ("/usr/bin/tail", "-c", "+0", "/var/log/postfix.log"),
    ("/usr/bin/tail", "-c", "+01", "/var/log/postfix.log"),
    ("/usr/bin/tail", "-c", "1", "/var/log/postfix.log"),
    ("/usr/bin/tail", "-f", "/var/log/postfix.log"),
    ("/usr/bin/tail", "-c", "+1", "/etc/shadow"),
    ("/usr/bin/tail", "-c", "+1", "/var/log/../../etc/shadow"),
    ("/usr/bin/tail", "-c", "+1", "/var/log/postfix.log", "/etc/shadow"),
    ("/usr/bin/tail", "-c", "+1", "/var/log/auth.log"),
    ("/usr/bin/du", "-sk", "/"),
    ("/usr/bin/du", "-sk", "/var/spool/postfix"),
    ("/usr/bin/du", "-sk", "/var/spool/postfix/deferred", "/root"),
    ("/bin/journalctl",),
    (*JOURNAL, "-o", "short-iso-precise", "-q"),  # the pager left on
    (*JOURNAL, "-o", "short-iso-precise", "--no-pager", "-q", "-f"),
    ("/bin/journalctl", "SYSLOG_FACILITY=4", *JOURNAL[2:], "-o", "short-iso-precise", "-q"),
    # the journal of a unit: a unit name the config refuses, or other matches and options
    ("/bin/journalctl", "_SYSTEMD_UNIT=postfix;id", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=postfix;id.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=postfix", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=postfix.socket", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=*.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=a\\b.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=a b.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_UNIT=" + "a" * 201 + ".service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "_SYSTEMD_USER_UNIT=postfix.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "--unit=postfix.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", "-u", "postfix.service", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", UNIT, "+", "_COMM=sshd", *JOURNAL[2:], *OUTPUT),
    ("/bin/journalctl", UNIT, "--since=yesterday", "--until=@1", *OUTPUT),
    ("/bin/journalctl", UNIT, "--since=@-1", "--until=@1", *OUTPUT),
    ("/bin/journalctl", UNIT, "--since=@0.5", "--until=@1", *OUTPUT),
    ("/bin/journalctl", UNIT, "--since", "@0", "--until=@1", *OUTPUT),
    ("/bin/journalctl", UNIT, *JOURNAL[2:], *OUTPUT, "--directory=/tmp/evil"),
    ("/bin/journalctl", UNIT, *JOURNAL[2:], *OUTPUT, "--file=/etc/shadow"),
    ("/bin/journalctl", UNIT, *JOURNAL[2:], "-o", "export", "--no-pager", "-q"),
    ("/bin/journalctl", "-D", "/tmp/evil", UNIT, *JOURNAL[2:], *OUTPUT),
    # a container's logs: another runtime command, option, time shape or name
    (DOCKER, *LOGS, "--follow", "postfix"),
    (DOCKER, *LOGS, "-f", "postfix"),
    (DOCKER, *LOGS, "--details", "postfix"),
    (DOCKER, *LOGS, "--tail=all", "postfix"),
    (DOCKER, *LOGS, "postfix", "other"),
    (DOCKER, *LOGS, "postfix", "--follow"),
    (DOCKER, *LOGS),
    (DOCKER, *LOGS, "/postfix"),
    (DOCKER, *LOGS, "-postfix"),
    (DOCKER, *LOGS, "--name=postfix"),
    (DOCKER, *LOGS, "postfix;id"),
    (DOCKER, *LOGS, "postfix id"),
    (DOCKER, *LOGS, "../postfix"),
    (DOCKER, *LOGS, "_postfix"),
    (DOCKER, *LOGS, "p" * 129),
    (DOCKER, *LOGS[:2], "--since=1h", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=0", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=1795000000", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-11-28T10:00:00+01:00", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-11-28T10:00:00.5Z", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-11-28", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-11-28t10:00:00z", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=1969-12-31T23:59:59Z", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-13-01T00:00:00Z", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since=2026-11-28T24:00:00Z", LOGS[3], "postfix"),
    (DOCKER, *LOGS[:2], "--since", LOGS[2][8:], LOGS[3], "postfix"),
    (DOCKER, LOGS[0], LOGS[1], LOGS[3], LOGS[2], "postfix"),
    (DOCKER, LOGS[0], *LOGS[2:], "postfix"),  # no --timestamps
    (DOCKER, "-H", "tcp://203.0.113.9:2375", *LOGS, "postfix"),
    (DOCKER, "--config=/tmp/evil", *LOGS, "postfix"),
    (DOCKER, "container", *LOGS, "postfix"),
    (DOCKER, "exec", "postfix", "/bin/sh"),
    (DOCKER, "run", "-v", "/:/host", "alpine"),
    (DOCKER, "cp", "postfix:/etc/shadow", "/tmp"),
    (PODMAN, *LOGS, "--latest"),
    (PODMAN, *LOGS, "-l"),
    (PODMAN, *LOGS, "-n", "postfix"),
    (PODMAN, "--remote", *LOGS, "postfix"),
    (PODMAN, "--url=tcp://203.0.113.9:8080", *LOGS, "postfix"),
    ("/usr/local/bin/docker", *LOGS, "postfix"),
    ("/usr/sbin/postqueue", "-j"),  # needs no root: never under sudo
    ("/usr/sbin/postqueue", "-f"),
    ("/bin/sh", "-c", "id"),
    ("/usr/bin/id",),
]


def utc_seconds(text: str) -> int:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SSZ`` (any text strptime reads; the caller
    compares the rebuilt command with the original, so a looser reading cannot pass)."""
    return timegm(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timetuple())


def built_by_the_code(argv: tuple[str, ...]) -> bool:
    """Whether a template builds the root command ``argv`` (inputs read back from the words).

    The open-ended inputs (queue IDs, offsets, times, unit and container names) are read from
    ``argv`` and the template called with them; log paths must be ``LOG_FILES``, the layout
    deploy/ expects.
    """
    tool, *words = argv
    try:
        if tool == tools.POSTCAT:
            built = tools.postcat(words[2], words[0][1:], sudo=True)  # type: ignore[arg-type]
        elif tool == tools.TAIL:
            if words[2] not in LOG_FILES:  # a host's maillog_file elsewhere: edit the rule
                return False
            built = tools.probe_file(words[2], int(words[1][1:]) - 1, 1, sudo=True)
        elif tool == tools.JOURNALCTL:
            unit = words[0].removeprefix("_SYSTEMD_UNIT=") if words[0] != JOURNAL[1] else ""
            since, until = (int(word.rpartition("@")[2]) for word in words[1:3])
            built = tools.read_journal(since, until, unit=unit, sudo=True, timeout=60)
        elif tool in tools.CONTAINER_TOOLS.values():
            runtime = next(k for k, v in tools.CONTAINER_TOOLS.items() if v == tool)
            since, until = (utc_seconds(word.partition("=")[2]) for word in words[2:4])
            built = tools.read_container(runtime, words[4], since, until, sudo=True, timeout=60)
        else:
            return argv in {command.argv for command in root_commands()}
    except (MailqbotError, ValueError, IndexError):
        return False
    return built.argv == argv
