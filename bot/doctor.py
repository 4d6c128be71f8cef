"""``mailqbot doctor``: is each host ready for the bot? One row per host, a next step per failure.

Per host, over the bot's own SSH executor and with the command lines the bot itself sends:

- login: the connection (host key pinned, key login accepted) and ``postconf -h
  mail_version queue_directory``: the Postfix version and the spool;
- time zone: ``date +%z`` (the log's time stamps carry no zone);
- mail log: where ``/mailq log`` reads it (``bot.postfix.logreader.detect_source``);
- posttls-finger: present for ``/mailq diagnose`` (``stat``, never run);
- sudo (``sudo = true``): ``sudo -n -l COMMAND`` for each root command line the bot sends on
  this host (every postsuper change, postcat, the read of this host's log, du on its spool).
  sudo answers with the policy's own matching, so a missing or narrowed rule is named by the
  exact command line it refuses. ``sudo = false`` (the forced-command wrapper, or root): the
  du on the spool runs as the bot runs it, and must succeed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import get_args

from bot.errors import AuthFailed, HostKeyMismatch, HostUnreachable, MailqbotError, SSHError
from bot.inventory import Host
from bot.postfix import logreader, logsource, postfix, tools
from bot.remote.audited import Remote
from bot.remote.command import RemoteCommand
from bot.remote.hostkeys import pinned_keys
from bot.remote.ssh import SUDO_NEEDS_AUTH, CommandResult, SSHExecutor
from bot.text import table

POSTTLS_FINGER = "/usr/sbin/posttls-finger"
SUDO = "sudo"
HOST_CONCURRENCY = 16
SUDO_CHECKS_AT_ONCE = 4  # channels per host: well under sshd's MaxSessions
SAMPLE_QUEUE_ID = "ABCDEF"  # any queue ID: the postcat rule is a pattern of them
# The Cmnd_Alias in deploy/sudoers.mailqbot that allows each program.
RULE_ALIAS = {
    tools.POSTSUPER: "MAILQBOT_POSTSUPER",
    tools.POSTCAT: "MAILQBOT_POSTCAT",
    tools.TAIL: "MAILQBOT_MAILLOG",
    tools.JOURNALCTL: "MAILQBOT_MAILLOG",
    tools.CONTAINER_TOOLS["docker"]: "MAILQBOT_CONTAINER_LOGS",
    tools.CONTAINER_TOOLS["podman"]: "MAILQBOT_CONTAINER_LOGS",
    tools.DU: "MAILQBOT_DU",
}


def sudo_list(argv: tuple[str, ...]) -> RemoteCommand:
    """``sudo -n -l COMMAND...``: whether the sudoers policy lets this user run ``COMMAND``
    exactly so, without a password (exit 0 and the command printed), never running it. Sent
    only to hosts with ``sudo = true`` (a forced-command wrapper refuses it)."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError("ask about a command by its absolute path")
    return RemoteCommand(argv=(SUDO, "-n", "-l", *argv), remote_timeout=10)


@dataclass(frozen=True)
class Check:
    """``ok``: True passed, False failed, None not run (an earlier check failed)."""

    value: str
    ok: bool | None = True
    next_step: str = ""


SKIPPED = Check("-", None)
COLUMNS = ("login", "postfix", "time zone", "queue_directory", "mail log", "posttls-finger", "sudo")


@dataclass
class HostReport:
    host: Host
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(c.ok is not False for c in self.checks.values()) and bool(self.checks)

    @property
    def failures(self) -> list[tuple[str, Check]]:
        return [(name, c) for name, c in self.checks.items() if c.ok is False]


def root_commands(
    host: Host, queue_directory: str, log: logsource.LogTarget
) -> list[RemoteCommand]:
    """The root command lines the bot sends to ``host``, one per sudoers line to check."""
    commands = [
        tools.change(action, queue, sudo=True)
        for action in get_args(tools.Change)
        for queue in tools.CHANGE_QUEUES
    ]
    commands += [tools.postcat(SAMPLE_QUEUE_ID, parts, sudo=True) for parts in tools.PARTS]
    if log.kind == "file":
        commands.append(tools.read_file(log.path, 0, 1, sudo=True, timeout=60))
    elif log.kind == "journal":
        commands.append(tools.read_journal(0, 1, unit=log.unit, sudo=True, timeout=60))
    else:
        commands.append(
            tools.read_container(log.runtime, log.container, 0, 1, sudo=True, timeout=60)
        )
    commands.append(tools.deferred_disk_use(queue_directory, sudo=True))
    return commands


def _login_failure(host: Host, exc: SSHError) -> Check:
    if isinstance(exc, HostKeyMismatch):
        try:
            text = host.known_hosts.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if pinned_keys(host, text):
            return Check(
                "key CHANGED",
                False,
                f"the host key differs from the one pinned in {host.known_hosts}: verify it on "
                f"the host, then `mailqbot hosts scan {host.name} --accept --replace`",
            )
        return Check(
            "key unknown",
            False,
            f"`mailqbot hosts scan {host.name}`, compare the fingerprint with the host's, then "
            "run it again with --accept",
        )
    if isinstance(exc, AuthFailed):
        return Check("refused", False, _first_sentence(exc.user_message))
    return Check("unreachable", False, _first_sentence(exc.user_message))


def _first_sentence(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


async def _sudo(ex: Remote, host: Host, qdir: str, log: logsource.LogTarget) -> Check:
    if not host.sudo:
        du = tools.deferred_disk_use(qdir, sudo=False)
        result = await ex.run(host, du, check=False)
        if result.exit_status == 0:
            return Check("sudo = false: root commands run")
        return Check(
            "sudo = false: root commands fail",
            False,
            f"`{du.display()}` failed ({_first_sentence(result.stderr, 160)}): with sudo = false "
            "the key must be forced through deploy/mailqbot-wrapper (with "
            "deploy/sudoers.mailqbot-wrapper) or log in as root",
        )
    needed = root_commands(host, qdir, log)
    gate = asyncio.Semaphore(SUDO_CHECKS_AT_ONCE)

    async def ask(command: RemoteCommand) -> CommandResult:
        async with gate:
            return await ex.run(host, sudo_list(command.argv), check=False)

    results = await asyncio.gather(*map(ask, needed))
    missing = [c for c, r in zip(needed, results, strict=True) if r.exit_status != 0]
    if not missing:
        return Check(f"all {len(needed)} rules")
    no_rules = all(SUDO_NEEDS_AUTH in r.stderr for r in results)
    lines = "; ".join(f"`{' '.join(c.argv)}` ({RULE_ALIAS[c.argv[0]]})" for c in missing)
    hint = (
        f"{host.user} has no passwordless sudo rule at all"
        if no_rules
        else f"sudo refuses {len(missing)} of {len(needed)} command lines"
    )
    return Check(
        f"{len(missing)} of {len(needed)} missing",
        False,
        f"{hint}: {lines}. Install deploy/sudoers.mailqbot as /etc/sudoers.d/mailqbot (`visudo "
        f"-cf` first), with User_Alias naming {host.user} and the paths of this host",
    )


async def check_host(executor: SSHExecutor, host: Host) -> HostReport:
    report = HostReport(host, dict.fromkeys(COLUMNS, SKIPPED))
    try:
        await _check(executor, host, report.checks)
    except SSHError as exc:  # the connection failed half-way: the check that ran into it fails
        name = next((n for n, c in report.checks.items() if c is SKIPPED), "sudo")
        report.checks[name] = Check("failed", False, _first_sentence(exc.user_message))
    return report


async def _check(executor: SSHExecutor, host: Host, checks: dict[str, Check]) -> None:
    ex = Remote.reader(executor, keep_records=False)
    try:
        values = await ex.run(host, tools.postconf_values("mail_version", "queue_directory"))
    except (HostKeyMismatch, AuthFailed, HostUnreachable) as exc:
        checks["login"] = _login_failure(host, exc)
        return
    except SSHError as exc:
        checks["login"] = Check(f"{host.user}@{host.address}:{host.port}")
        checks["postfix"] = Check("postconf failed", False, _first_sentence(exc.user_message))
        return
    checks["login"] = Check(f"{host.user}@{host.address}:{host.port}")
    version, _, qdir = values.stdout.strip().partition("\n")
    checks["postfix"] = _version(version)
    checks["queue_directory"] = Check(qdir.strip() or "?", bool(qdir.strip()))
    qdir = qdir.strip() or "/var/spool/postfix"
    checks["time zone"] = await _zone(ex, host)
    log: logsource.LogTarget | None = None
    try:
        log = await logreader.detect_source(ex, host)
        checks["mail log"] = Check(log.label)
    except MailqbotError as exc:
        checks["mail log"] = Check("not found", False, _first_sentence(exc.user_message))
    checks["posttls-finger"] = await _posttls_finger(ex, host)
    if log is not None or not host.sudo:
        checks["sudo"] = await _sudo(ex, host, qdir, log or logsource.LogTarget("journal"))


def _version(text: str) -> Check:
    try:
        postfix.mail_version_tuple(text)
    except MailqbotError:
        return Check(text[:40] or "?", False, "`postconf -h mail_version` printed no version")
    if not postfix.supports_json(text):
        return Check(f"{text} (no postqueue -j)", True)
    return Check(text)


async def _zone(ex: Remote, host: Host) -> Check:
    try:
        result = await ex.run(host, tools.utc_offset())
        seconds = postfix.parse_utc_offset(result.stdout)
    except MailqbotError as exc:
        return Check("?", False, _first_sentence(exc.user_message))
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return Check(f"UTC{sign}{hours:02d}:{minutes:02d}")


async def _posttls_finger(ex: Remote, host: Host) -> Check:

    result = await ex.run(host, tools.stat_file(POSTTLS_FINGER), check=False)
    if result.exit_status == 0:
        return Check("present")
    return Check(
        "missing",
        False,
        f"install posttls-finger on {host.name} (Debian/Ubuntu: it comes with postfix; RHEL: "
        "postfix-perl-scripts is not it, the postfix package has it in /usr/sbin) for "
        "`/mailq diagnose`",
    )


async def check_hosts(
    hosts: Sequence[Host],
    *,
    progress: Callable[[int, int], None] | None = None,
    concurrency: int = HOST_CONCURRENCY,
) -> list[HostReport]:
    gate = asyncio.Semaphore(concurrency)
    done = 0
    async with SSHExecutor() as executor:

        async def one(host: Host) -> HostReport:
            nonlocal done
            async with gate:
                report = await check_host(executor, host)
            done += 1
            if progress is not None:
                progress(done, len(hosts))
            return report

        return list(await asyncio.gather(*(one(h) for h in hosts)))


def render(reports: Sequence[HostReport]) -> str:
    rows = []
    for r in reports:
        cells = [_cell(r.checks[name]) for name in COLUMNS]
        rows.append([r.host.name, "ready" if r.ready else "FAIL", *cells])
    out = [table(rows, ["host", "status", *COLUMNS])]
    failed = [r for r in reports if not r.ready]
    out.append("")
    out.append(f"{len(reports) - len(failed)} of {len(reports)} host(s) ready")
    if failed:
        out.append("")
        out.append("next steps:")
        for r in failed:
            for name, check in r.failures:
                out.append(f"  {r.host.name}: {name}: {check.next_step}")
    return "\n".join(out)


def _cell(check: Check) -> str:
    return f"✗ {check.value}" if check.ok is False else check.value
