"""Least privilege on the host: deploy/ allows exactly the command lines the code builds.

The commands come from tests/helpers/all_commands.py, which calls every template function over its
input domain; the first test checks that list of functions against the source, so a new
template cannot be left out. Then:

- deploy/sudoers.mailqbot (with a model of sudo's matching here; with the real sudo on the
  lab in tests/e2e/test_privilege_lab.py): every root command is allowed, every rule is
  needed by one, what a rule allows is a command the code builds (the one exception is
  written down), and what the bot never runs is refused;
- deploy/mailqbot-wrapper, under dash and bash: every command line the executor sends is
  allowed and runs exactly its words, by the same programs, as root only where needed; near
  misses and shell tricks are refused;
- ``sudo = false``: no template forces sudo on a host (the executor side is in
  tests/remote/test_run.py).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.inventory import CONTAINER_NAME, SYSTEMD_UNIT
from bot.postfix import tools
from bot.postfix.models import is_queue_id
from bot.remote.command import RemoteCommand
from helpers.all_commands import (
    BUILDERS,
    NEVER_AS_ROOT,
    ROOT,
    SUDO_HOST_BUILDERS,
    all_commands,
    built_by_the_code,
    command_lines,
    qualified,
    root_commands,
    root_tools,
    template_functions,
    utc_seconds,
)
from helpers.standins import stand_ins, why_not

SUDOERS = ROOT / "deploy" / "sudoers.mailqbot"
WRAPPER = ROOT / "deploy" / "mailqbot-wrapper"
SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]
Rule = tuple[str, str | re.Pattern[str]]

# --- the list of templates ------------------------------------------------------------------


def test_every_template_function_is_enumerated() -> None:
    """A function that builds a RemoteCommand must be in all_commands.BUILDERS."""
    builders = [*BUILDERS, *SUDO_HOST_BUILDERS]
    assert template_functions() == {qualified(function) for function in builders}


def test_every_command_line_is_written_in_tools() -> None:
    """Command lines live in bot/postfix/tools.py; doctor only asks sudo about them."""
    outside = {f for f in template_functions() if not f.startswith("bot.postfix.tools.")}
    assert outside == {"bot.doctor.sudo_list"}


def test_the_wrapper_refuses_doctors_sudo_questions() -> None:
    """``sudo -n -l`` goes to sudo = true hosts only; the wrapper runs nothing it does not know."""
    for builder, domain in SUDO_HOST_BUILDERS.items():
        for command in list(domain())[:3]:
            assert not command.sudo, qualified(builder)
            ran = check(command.command_line())
            assert ran.returncode == 126, command.display()
            assert "refused" in ran.stderr


def test_no_template_forces_sudo_on_a_host() -> None:
    """A template that asks for root takes the host's ``sudo`` setting and builds both ways."""
    commands = all_commands()
    for builder, domain in BUILDERS.items():
        if any(command.sudo for command in domain()):
            assert "sudo" in inspect.signature(builder).parameters, qualified(builder)
    unprivileged = {(c.argv, c.pipe_to) for c in commands if not c.sudo}
    for command in root_commands():
        assert (command.argv, command.pipe_to) in unprivileged, command.display()


# --- deploy/sudoers.mailqbot, through a model of sudo's matching --------------------------


def sudoers_rules(text: str) -> list[Rule]:
    """The Cmnd_Alias entries: (program, literal arguments or compiled ^...$ expression)."""
    rules: list[Rule] = []
    for line in text.replace("\\\n", " ").splitlines():
        match = re.fullmatch(r"Cmnd_Alias\s+[A-Z_]+\s*=\s*(.*)", line.split("#", 1)[0].strip())
        if match is None:
            continue
        for item in re.split(r"(?<!\\),", match.group(1)):
            program, _, arguments = item.strip().partition(" ")
            arguments = re.sub(r"\\([,:=\\])", r"\1", arguments.strip())
            rules.append((program, re.compile(arguments) if arguments[:1] == "^" else arguments))
    return rules


RULES = sudoers_rules(SUDOERS.read_text())


def rule_for(argv: tuple[str, ...]) -> int | None:
    """The index of the first rule that allows ``argv``, as sudo matches (the whole string)."""
    arguments = " ".join(argv[1:])
    for i, (program, allowed) in enumerate(RULES):
        if program != argv[0]:
            continue
        if isinstance(allowed, str) and allowed == arguments:
            return i
        if isinstance(allowed, re.Pattern) and allowed.fullmatch(arguments):
            return i
    return None


def test_sudoers_allows_every_root_command() -> None:
    refused = [c.display() for c in root_commands() if rule_for(c.argv) is None]
    assert refused == []


def test_every_sudoers_rule_is_needed() -> None:
    used = {rule_for(command.argv) for command in root_commands()}
    unused = [RULES[i] for i in range(len(RULES)) if i not in used]
    assert unused == []
    # postsuper, postcat, tail and journalctl, docker and podman, du
    assert len(RULES) == 16 + 1 + 2 + 2 + 1


def test_sudoers_brackets_hold_no_backslash() -> None:
    """sudo passes a bracket expression to regcomp as written, so ``[a\\:]`` would allow a
    backslash too (checked with sudo 1.9.13): an escaped character goes outside, ``(...|\\:)``.
    The model above unescapes everywhere; this keeps it true to the real sudo."""
    rules = [line for line in SUDOERS.read_text().splitlines() if not line.startswith("#")]
    assert any("|\\:)" in line for line in rules)  # the unit rule, written the right way
    assert [line for line in rules if re.search(r"\[[^]]*\\[^]]*\]", line)] == []


@pytest.mark.parametrize("argv", NEVER_AS_ROOT, ids=" ".join)
def test_sudoers_refuses_what_the_bot_never_runs_as_root(argv: tuple[str, ...]) -> None:
    assert rule_for(argv) is None
    assert not built_by_the_code(argv)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_a_sudoers_expression_allows_the_code_builds(data: st.DataObject) -> None:
    """Whatever string a rule's expression accepts is a command some template builds.

    The exceptions sudoers cannot express, all harmless and refused by the wrapper: a window
    that ends before it starts (journalctl and the runtimes print nothing), and for a
    container a day its month does not have (``2026-02-30``: at worst another window of the
    same log).
    """
    program, pattern = data.draw(
        st.sampled_from([r for r in RULES if isinstance(r[1], re.Pattern)])
    )
    assert isinstance(pattern, re.Pattern)
    arguments = data.draw(st.from_regex(pattern.pattern[1:-1], fullmatch=True))
    argv = (program, *arguments.split(" "))
    assert rule_for(argv) is not None
    if program == tools.JOURNALCTL:
        since, until = (int(word.rpartition("@")[2]) for word in argv[2:4])
        if since > until:
            return
    if program in tools.CONTAINER_TOOLS.values():
        try:
            since, until = (utc_seconds(word.partition("=")[2]) for word in argv[3:5])
        except ValueError:  # not a real day, such as February 30
            return
        if since > until:
            return
    assert built_by_the_code(argv), argv


# --- deploy/mailqbot-wrapper ----------------------------------------------------------------


def check(line: str, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    """``mailqbot-wrapper --check LINE``: what the wrapper would run, without running it."""
    return subprocess.run(
        [shell, str(WRAPPER), "--check", line], capture_output=True, text=True, timeout=10
    )


def expected_stages(command: RemoteCommand) -> list[list[str]]:
    """What the wrapper must run for ``command``: the same words, root only where needed."""
    first = ["timeout", "-k", "5", f"{command.remote_timeout:g}"]
    if command.argv[0] in root_tools():
        first += [] if os.geteuid() == 0 else ["sudo", "-n"]
        first += [str(WRAPPER), "--privileged"]
    return [[*first, *command.argv], *(list(stage) for stage in command.pipe_to)]


@pytest.mark.parametrize("shell", SHELLS)
def test_wrapper_runs_every_command_line_the_bot_sends(shell: str) -> None:
    lines = list(command_lines())
    assert len(lines) > 400
    for command, line in lines:
        ran = check(line, shell)
        assert ran.returncode == 0, (line, ran.stderr)
        stages = [row.split("\t") for row in ran.stdout.splitlines()]
        assert stages == expected_stages(command), line


def mutations(line: str) -> list[str]:
    """Near misses of a command line the bot sends: tricks, extra or missing words."""
    words = line.split(" ")
    tool = 6 if words[4] == "sudo" else 4  # the program, after `timeout -k 5 N [sudo -n]`
    return [
        line + " ; id",
        line + ";id",
        line + " && id",
        line + " || id",
        line + " | /bin/sh",
        line + " | sh",
        line + " > /tmp/x",
        line + " $(id)",
        line + " `id`",
        line + "\nid",
        line + "\n",
        line + " ",
        " " + line,
        line.replace(" ", "  ", 1),
        line.replace(" ", "\t", 1),
        line + " x",
        line + " ALL",
        " ".join(words[:-1]),
        " ".join(words[4:]),  # no timeout
        " ".join([*words[:4], "sudo", *words[4:]]) if words[4] != "sudo" else line + " -",
        " ".join([*words[:tool], "/tmp/evil", *words[tool + 1 :]]),
        " ".join([*words[:tool], words[tool].replace("/", "//", 1), *words[tool + 1 :]]),
        " ".join([*words[:tool], "../.." + words[tool], *words[tool + 1 :]]),
        " ".join([*words[:tool], words[tool], "-c", "/tmp", *words[tool + 1 :]]),
    ]


# Commands whose argument list is open-ended: dropping or adding a word can give another
# command line the bot sends, so only the shell tricks apply to them.
VARIADIC = {"/usr/sbin/postconf", "/usr/bin/stat"}


def one_line_of_each_kind() -> list[tuple[RemoteCommand, str]]:
    """A command line per program, first argument, sudo and pipe shape."""
    kinds: dict[tuple[object, ...], tuple[RemoteCommand, str]] = {}
    for command, line in command_lines():
        key = (command.argv[:2], command.sudo, len(command.pipe_to), len(command.argv))
        kinds.setdefault(key, (command, line))
    return list(kinds.values())


@pytest.mark.parametrize("shell", SHELLS)
def test_wrapper_refuses_near_misses(shell: str) -> None:
    sent = {line for _, line in command_lines()}
    tried = 0
    for command, line in one_line_of_each_kind():
        variants = mutations(line)
        if command.argv[0] in VARIADIC:
            variants = variants[:14]
        for variant in variants:
            if variant in sent:
                continue
            ran = check(variant, shell)
            tried += 1
            assert ran.returncode == 126, (variant, ran.stdout)
            assert ran.stdout == ""
            assert ran.stderr.startswith("mailqbot-wrapper: refused: "), ran.stderr
    assert tried > 500


GREP = "/bin/grep -a -F ' status='"
JOURNAL_REST = "--since=@0 --until=@1 -o short-iso-precise --no-pager -q"
DOCKER, PODMAN = tools.CONTAINER_TOOLS["docker"], tools.CONTAINER_TOOLS["podman"]
SINCE, UNTIL = "--since=2026-11-28T10:00:00Z", "--until=2026-11-28T11:00:00Z"
# The journal match word of a unit read, as an attacker would bend it.
UNIT_MATCHES = [
    "_SYSTEMD_UNIT=postfix.service;id",
    "_SYSTEMD_UNIT=postfix.service$(id)",
    "'_SYSTEMD_UNIT=postfix.service'",
    "_SYSTEMD_UNIT='postfix.service'",
    "_SYSTEMD_UNIT=postfix",
    "_SYSTEMD_UNIT=postfix.socket",
    "_SYSTEMD_UNIT=.service",
    "_SYSTEMD_UNIT=",
    "_SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=sshd.service",
    "_SYSTEMD_UNIT=postfix.service + _COMM=sshd",
    "_SYSTEMD_USER_UNIT=postfix.service",
    "--unit=postfix.service",
    "-u postfix.service",
    "-D /tmp/evil _SYSTEMD_UNIT=postfix.service",
    "--directory=/tmp/evil _SYSTEMD_UNIT=postfix.service",
    "--root=/tmp/evil _SYSTEMD_UNIT=postfix.service",
    "SYSLOG_FACILITY=2 _SYSTEMD_UNIT=postfix.service",
]
# A container read (program, words after it), as an attacker would bend it.
CONTAINER_READS = [
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} postfix;id"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} 'postfix'"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} --follow postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} postfix --follow"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} -f postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} --details postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} -postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} --name=postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} /postfix"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL} postfix other"),
    (DOCKER, f"logs --timestamps {SINCE} {UNTIL}"),
    (DOCKER, f"logs --timestamps {UNTIL} {SINCE} postfix"),
    (DOCKER, f"logs {SINCE} {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=1h {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=0 {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=1795000000 {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28T10:00:00+01:00 {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28T10:00:00.5Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28 {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=1969-12-31T23:59:59Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-02-29T00:00:00Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=1900-02-29T00:00:00Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-04-31T00:00:00Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28T24:00:00Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28T10:60:00Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since=2026-11-28T10:00:60Z {UNTIL} postfix"),
    (DOCKER, f"logs --timestamps --since {SINCE[8:]} {UNTIL} postfix"),
    (DOCKER, f"--host=unix:///tmp/evil.sock logs --timestamps {SINCE} {UNTIL} postfix"),
    (DOCKER, f"-H tcp://203.0.113.9:2375 logs --timestamps {SINCE} {UNTIL} postfix"),
    (DOCKER, f"--config=/tmp/evil logs --timestamps {SINCE} {UNTIL} postfix"),
    (DOCKER, f"container logs --timestamps {SINCE} {UNTIL} postfix"),
    (DOCKER, "exec postfix /bin/sh"),
    (DOCKER, "run -v /:/host alpine"),
    (PODMAN, f"logs --timestamps {SINCE} {UNTIL} --latest"),
    (PODMAN, f"logs --timestamps {SINCE} {UNTIL} -l"),
    (PODMAN, f"--remote logs --timestamps {SINCE} {UNTIL} postfix"),
    ("/usr/local/bin/docker", f"logs --timestamps {SINCE} {UNTIL} postfix"),
]
ATTACKS = [
    "",
    "id",
    "sh",
    "/bin/sh -c id",
    "sftp-server",
    "/usr/lib/openssh/sftp-server",
    "scp -t /tmp",
    "rsync --server -e.Lsfx . /tmp",
    "timeout -k 5 60 /bin/sh -c id",
    "timeout -k 5 60 /usr/sbin/postqueue -j -c /tmp/evil",
    "timeout -k 5 60 /usr/sbin/postqueue -p -c /tmp/evil",
    "timeout -k 5 60 /usr/sbin/postqueue -s example.com",
    "timeout -k 5 60 /usr/sbin/postqueue -i ALL",
    "timeout -s KILL 60 /usr/sbin/postqueue -j",
    "timeout -k 5 60s /usr/sbin/postqueue -j",
    "timeout -k 5 1e9 /usr/sbin/postqueue -j",
    "timeout -k 5 -1 /usr/sbin/postqueue -j",
    "timeout -k 5 0 /usr/sbin/postqueue -j",  # no time limit at all
    "timeout -k 5 0.0 /usr/sbin/postqueue -j",
    "timeout -k 5 060 /usr/sbin/postqueue -j",
    "timeout -k 5 60 /usr/sbin/postqueue -j\u00a0",
    "timeout -k 5 60 /usr/sbin/postqueue -\uff4a",
    "timeout -k 5 60 sudo /usr/sbin/postsuper -d - deferred",
    "timeout -k 5 60 sudo -n -u root /usr/sbin/postsuper -d - deferred",
    "timeout -k 5 60 sudo -n /bin/sh",
    "timeout -k 5 60 sudo -n sudo -n /usr/sbin/postsuper -d - deferred",
    "timeout -k 5 60 sudo -n /usr/sbin/postqueue -j",
    "timeout -k 5 60 env PATH=/tmp /usr/sbin/postqueue -j",
    "PATH=/tmp timeout -k 5 60 /usr/sbin/postqueue -j",
    "timeout -k 5 60 postqueue -j",
    "timeout -k 5 60 /usr/sbin/../sbin/postqueue -j",
    "timeout -k 5 60 /usr/local/sbin/postqueue -j",
    "timeout -k 5 600 /usr/sbin/postsuper -d ALL deferred",
    "timeout -k 5 600 /usr/sbin/postsuper -d ALL",
    "timeout -k 5 600 /usr/sbin/postsuper -d 4B7D3C1A2B",
    "timeout -k 5 600 /usr/sbin/postsuper -d 4B7D3C1A2B deferred",
    "timeout -k 5 600 /usr/sbin/postsuper -d -",
    "timeout -k 5 600 /usr/sbin/postsuper -d - corrupt",
    "timeout -k 5 600 /usr/sbin/postsuper -d - deferred -d ALL",
    "timeout -k 5 600 /usr/sbin/postsuper -d - deferred | /usr/bin/head -c 1",
    "timeout -k 5 60 /usr/sbin/postcat -q 4B7D3C1A2B",
    "timeout -k 5 60 /usr/sbin/postcat -eh -q 4B7D3C1A2B | /bin/sh",
    "timeout -k 5 60 /usr/bin/tail -n 100 /var/log/postfix.log",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log",
    "timeout -k 5 60 /usr/bin/tail -c +1 /etc/shadow | /usr/bin/head -c 10",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log /etc/shadow | /usr/bin/head -c 1",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log | /usr/bin/head -c 1 /etc/shadow",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log | /usr/bin/head -c 1 | /bin/sh",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log | /bin/grep -a -F ' status='",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log | /usr/bin/head -c 1 | "
    "/bin/grep -a -F ' status=' /etc/shadow",
    "timeout -k 5 60 /usr/bin/tail -c +1 /var/log/postfix.log | /usr/bin/head -c 1 | "
    "/bin/grep -a -F '' status='",
    "timeout -k 5 60 /bin/journalctl SYSLOG_FACILITY=2 --since=@9 --until=@1 -o "
    "short-iso-precise --no-pager -q | /bin/grep -a -F ' status='",
    "timeout -k 5 60 /bin/journalctl SYSLOG_FACILITY=2 --since=@0 --until=@1 -o "
    "short-iso-precise -q | /bin/grep -a -F ' status='",
    "timeout -k 5 30 /usr/bin/du -sk /",
    "timeout -k 5 30 /usr/bin/du -sk /var/spool/postfix/deferred /root",
    "timeout -k 5 10 /usr/bin/head -c 4096 /etc/shadow /etc/resolv.conf",
    "timeout -k 5 10 /usr/bin/head -c 4096 /etc/resolv.conf /etc/shadow",
    "timeout -k 5 10 /usr/bin/stat -c '%s %Y' -- relative/path",
    "timeout -k 5 10 /usr/bin/stat -c '%s %Y' --printf=x -- /etc/shadow",
    "timeout -k 5 10 /usr/bin/stat -L -c '%s %n'",
    "timeout -k 5 10 /usr/bin/stat -L -c '%s %n' /var/log/mail.log -",
    "timeout -k 5 60 /usr/sbin/postconf -h",
    "timeout -k 5 60 /usr/sbin/postconf -e mynetworks=0.0.0.0/0",
    "timeout -k 5 60 /usr/sbin/postconf -h mail_version -c /tmp",
    "timeout -k 5 60 /usr/sbin/postconf -h MAIL_VERSION",
    "timeout -k 5 60 /usr/sbin/posttls-finger -t 5 -T 5 -m 1 -l may -P /etc/ssl/certs -C "
    "-oexample.com",
    "timeout -k 5 60 /usr/sbin/posttls-finger -t 5 -T 5 -m 1 -l may -P /etc/ssl/certs -C "
    "'[127.0.0.1]:0'",
    "timeout -k 5 60 /usr/sbin/posttls-finger -t 5 -T 5 -m 1 -l may -P /etc/ssl/certs -C "
    "'[127.0.0.1]:25' -o x",
    "timeout -k 5 60 /usr/sbin/posttls-finger -t 5 -T 5 -m 1 -l may -P /tmp -C example.com",
    "timeout -k 5 10 /bin/date +%z -s 2000-01-01",
    "timeout -k 5 10 /bin/date -s 2000-01-01",
    *(f"timeout -k 5 60 sudo -n /bin/journalctl {m} {JOURNAL_REST} | {GREP}" for m in UNIT_MATCHES),
    f"timeout -k 5 60 sudo -n /bin/journalctl _SYSTEMD_UNIT=postfix.service {JOURNAL_REST}",
    f"timeout -k 5 60 /bin/journalctl _SYSTEMD_UNIT=postfix.service {JOURNAL_REST} | {GREP} "
    "| /bin/sh",
    f"timeout -k 5 60 /bin/journalctl _SYSTEMD_UNIT=postfix.service --since=@0 --until=@1 -o "
    f"short-iso-precise --no-pager -q --file=/etc/shadow | {GREP}",
    f"timeout -k 5 60 /bin/journalctl --since=@0 _SYSTEMD_UNIT=postfix.service --until=@1 -o "
    f"short-iso-precise --no-pager -q | {GREP}",
    f"timeout -k 5 60 /bin/journalctl _SYSTEMD_UNIT=postfix.service --since=yesterday "
    f"--until=@1 -o short-iso-precise --no-pager -q | {GREP}",
    *(f"timeout -k 5 60 sudo -n {tool} {words} | {GREP}" for tool, words in CONTAINER_READS),
    f"timeout -k 5 60 /usr/bin/docker logs --timestamps {SINCE} {UNTIL} postfix",  # no grep
    f"timeout -k 5 60 /usr/bin/docker logs --timestamps {SINCE} {UNTIL} postfix | "
    "/usr/bin/head -c 1",
    f"timeout -k 5 60 /usr/bin/docker logs --timestamps {SINCE} {UNTIL} postfix | {GREP} | /bin/sh",
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("line", ATTACKS)
def test_wrapper_refuses_attacks(shell: str, line: str) -> None:
    ran = check(line, shell)
    assert (ran.returncode, ran.stdout) == (126, "")
    assert ran.stderr.startswith("mailqbot-wrapper: refused: ")
    assert "install its deploy/mailqbot-wrapper" in ran.stderr


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789ABCDEFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyzaeiouz", max_size=40)
    | st.from_regex(r"[0-9A-F]{4,26}|[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz]{8,18}z"
                    r"[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy]{0,16}", fullmatch=True)
)  # fmt: skip
def test_wrapper_queue_ids_are_the_bots(queue_id: str) -> None:
    ran = check(f"timeout -k 5 60 /usr/sbin/postqueue -i {queue_id}")
    assert (ran.returncode == 0) == is_queue_id(queue_id), queue_id


UNIT = "_SYSTEMD_UNIT=postfix.service"
UNBENT = [  # the lines the attacks above bend, as the bot sends them: allowed
    f"timeout -k 5 60 sudo -n /bin/journalctl {UNIT} {JOURNAL_REST} | {GREP}",
    f"timeout -k 5 60 sudo -n {DOCKER} logs --timestamps {SINCE} {UNTIL} postfix | {GREP}",
    f"timeout -k 5 60 sudo -n {PODMAN} logs --timestamps {SINCE} {UNTIL} postfix | {GREP}",
]


@pytest.mark.parametrize("line", UNBENT)
def test_wrapper_allows_the_lines_the_attacks_bend(line: str) -> None:
    assert built_by_the_code(tuple(line.split(" | ")[0].split(" ")[6:]))
    assert check(line).returncode == 0


def journal_line(unit: str) -> str:
    return f"timeout -k 5 60 /bin/journalctl _SYSTEMD_UNIT={unit} {JOURNAL_REST} | {GREP}"


def container_line(name: str, since: str = SINCE[8:], until: str = UNTIL[8:]) -> str:
    window = f"--since={since} --until={until}"
    return f"timeout -k 5 60 {DOCKER} logs --timestamps {window} {name} | {GREP}"


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9:_.@\-=;$'+/\\]{0,6}(\.service|\.socket|service|)", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9:_.@-]{198,202}\.service", fullmatch=True)
)
def test_wrapper_units_are_the_configs(unit: str) -> None:
    """The wrapper takes exactly the unit names the config does (bot/inventory.py)."""
    ran = check(journal_line(unit))
    assert (ran.returncode == 0) == bool(SYSTEMD_UNIT.fullmatch(unit)), unit


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9_.\-:@=+/']{0,6}", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{125,129}", fullmatch=True)
)
def test_wrapper_container_names_are_the_configs(name: str) -> None:
    ran = check(container_line(name))
    assert (ran.returncode == 0) == bool(CONTAINER_NAME.fullmatch(name)), name


def sent_as(text: str) -> bool:
    """Whether read_container can write ``text`` for a time: a real UTC second from 1970."""
    try:
        since = utc_seconds(text)
        command = tools.read_container("docker", "p", since, since, sudo=False, timeout=1)
    except ValueError:
        return False
    return command.argv[3] == f"--since={text}"


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"(19[6-9][0-9]|2[0-9]{3}|[0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
                  fullmatch=True)
    | st.from_regex(r"(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(2[89]|3[01])T([01][0-9]|2[0-4]):"
                    r"[0-6][0-9]:[0-6][0-9]Z", fullmatch=True)
)  # fmt: skip
def test_wrapper_times_are_the_ones_the_code_writes(since: str) -> None:
    """Any day the month has (leap years too), any second, from 1970 on; nothing else."""
    ran = check(container_line("postfix", since, "9999-12-31T23:59:59Z"))
    assert (ran.returncode == 0) == sent_as(since), since


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 253_402_300_799), st.integers(0, 253_402_300_799))
def test_wrapper_container_windows_end_after_they_start(since: int, until: int) -> None:
    start, end = (
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in (since, until)
    )
    ran = check(container_line("postfix", start, end))
    assert (ran.returncode == 0) == (since <= until), (start, end)


def test_wrapper_narrowed_to_one_unit_and_container(tmp_path: Path) -> None:
    """JOURNAL_UNITS and CONTAINERS, edited as the header says, allow those names alone."""
    text = WRAPPER.read_text()
    narrowed = text.replace("\nJOURNAL_UNITS=''", "\nJOURNAL_UNITS='postfix@-.service'")
    narrowed = narrowed.replace("\nCONTAINERS=''", "\nCONTAINERS='mail-postfix-1 postfix'")
    assert "\nJOURNAL_UNITS='postfix@-.service'" in narrowed
    assert "\nCONTAINERS='mail-postfix-1 postfix'" in narrowed
    edited = tmp_path / "mailqbot-wrapper"
    edited.write_text(narrowed)
    allowed = {
        journal_line("postfix@-.service"): True,
        journal_line("postfix.service"): False,
        journal_line("sshd.service"): False,
        journal_line("postfix@-.service.service"): False,
        container_line("mail-postfix-1"): True,
        container_line("postfix"): True,
        container_line("mail-postfix-2"): False,
        container_line("mail-postfix"): False,
        container_line("redis"): False,
    }
    for shell in SHELLS:
        for line, expected in allowed.items():
            ran = subprocess.run([shell, str(edited), "--check", line], capture_output=True,
                                 text=True, timeout=10)  # fmt: skip
            assert (ran.returncode == 0) == expected, (shell, line, ran.stderr)
    sent = f"timeout -k 5 60 /bin/journalctl SYSLOG_FACILITY=2 {JOURNAL_REST} | {GREP}"
    assert subprocess.run(["sh", str(edited), "--check", sent], timeout=10).returncode == 0


def test_privileged_mode_runs_exactly_the_words_with_no_inherited_environment(
    tmp_path: Path,
) -> None:
    """As root, ``--privileged`` runs the container tool (a stand-in that reports what it
    got) with exactly the command's words, and none of the caller's variables: a DOCKER_HOST,
    DOCKER_CONFIG, HOME or MAIL_CONFIG set by whoever called it does not reach it."""
    if reason := why_not(tmp_path / "probe"):
        pytest.skip(reason)
    report = '#!/bin/sh\nprintf "%s\\n" "$@"\necho ---\nexec /usr/bin/env\n'
    command = tools.read_container("docker", "mail-postfix-1", 0, 1_795_000_000,
                                       sudo=True, timeout=60)  # fmt: skip
    planted = dict.fromkeys(("DOCKER_CONFIG", "HOME", "MAIL_CONFIG", "CONTAINERS_CONF"), "/tmp/x")
    planted["DOCKER_HOST"] = "tcp://203.0.113.9:2375"
    ran = subprocess.run(
        [*stand_ins({DOCKER: report}, tmp_path / "layer"), "sh", str(WRAPPER), "--privileged",
         *command.argv],
        capture_output=True, text=True, timeout=30, cwd="/",
        env={"PATH": os.environ["PATH"], **planted},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    words, _, environment = ran.stdout.partition("---\n")
    assert words.splitlines() == list(command.argv[1:])
    assert set(environment.splitlines()) == {
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "PWD=/"  # PWD: the stand-in's sh
    }  # fmt: skip


LABEL = r"[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?"


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[a-z0-9.-]{1,70}", fullmatch=True)
    | st.from_regex(rf"-?{LABEL}(\.{LABEL}){{0,3}}-?", fullmatch=True)
)
def test_wrapper_domains_are_diagnoses(domain: str) -> None:
    """Every domain diagnose probes passes; nothing outside its domain grammar does."""
    ran = check(
        "timeout -k 5 9 /usr/sbin/posttls-finger -t 1 -T 1 -m 1 -l may -P /etc/ssl/certs -C "
        + domain
    )
    if tools.checked_domain(domain) == domain:
        assert ran.returncode == 0, domain
    if ran.returncode == 0:
        assert tools._DOMAIN.fullmatch(domain), domain


@pytest.mark.parametrize(
    "argv",
    [
        [],
        *NEVER_AS_ROOT,
        ["/usr/sbin/postsuper", "-d", "-", "deferred", "; id"],
    ],
    ids=str,
)
def test_privileged_mode_refuses_what_the_bot_never_runs_as_root(argv: list[str]) -> None:
    ran = subprocess.run(
        ["sh", str(WRAPPER), "--privileged", *argv], capture_output=True, text=True, timeout=10
    )
    assert (ran.returncode, ran.stdout) == (126, "")
    assert ran.stderr.startswith("mailqbot-wrapper: refused: ")


@pytest.mark.parametrize(
    ("argv", "environment", "why"),
    [
        ([str(WRAPPER)], {}, "no command (this key opens no shell)"),
        ([str(WRAPPER)], {"SSH_ORIGINAL_COMMAND": ""}, "no command"),
        ([str(WRAPPER.relative_to(ROOT))], {"SSH_ORIGINAL_COMMAND": "x"}, "absolute path"),
        ([str(WRAPPER), "--check"], {}, "usage"),
        ([str(WRAPPER), "--help"], {}, "usage"),
    ],
)
def test_forced_command_mode_refuses_without_a_command(
    argv: list[str], environment: dict[str, str], why: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSH_ORIGINAL_COMMAND"} | environment
    ran = subprocess.run(
        ["sh", *argv], capture_output=True, text=True, timeout=10, env=env, cwd=ROOT
    )
    assert ran.returncode == 126
    assert why in ran.stderr


def test_wrapper_is_plain_posix_sh() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    ran = subprocess.run(
        ["shellcheck", "-s", "sh", str(WRAPPER)], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stdout


def test_wrapper_and_sudoers_agree_on_the_root_commands() -> None:
    """Both files name the same programs as root: the ones the templates mark ``sudo``."""
    text = WRAPPER.read_text()
    block = text[text.index("is_privileged() {") : text.index("run_privileged() {")]
    arms = re.findall(r"^    (/[\w/ |-]+)\)$", block, re.MULTILINE)
    assert {program for arm in arms for program in arm.split(" | ")} == root_tools()
    assert {program for program, _ in RULES} == root_tools()
