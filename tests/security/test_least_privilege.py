"""Least privilege on the host: deploy/ allows exactly the command lines the code builds.

The commands come from tests/all_commands.py, which calls every template function over its
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
  tests/ssh/test_run.py).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess

import pytest
from all_commands import (
    BUILDERS,
    NEVER_AS_ROOT,
    ROOT,
    all_commands,
    built_by_the_code,
    command_lines,
    qualified,
    root_commands,
    root_tools,
    template_functions,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.diag import host as diag
from bot.mta import maillog
from bot.mta.models import is_queue_id
from bot.remote.command import RemoteCommand

SUDOERS = ROOT / "deploy" / "sudoers.mailqbot"
WRAPPER = ROOT / "deploy" / "mailqbot-wrapper"
SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]
Rule = tuple[str, str | re.Pattern[str]]

# --- the list of templates ------------------------------------------------------------------


def test_every_template_function_is_enumerated() -> None:
    """A function that builds a RemoteCommand must be in all_commands.BUILDERS."""
    assert template_functions() == {qualified(function) for function in BUILDERS}


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
    assert len(RULES) == 16 + 1 + 2 + 1  # postsuper, postcat, tail and journalctl, du


@pytest.mark.parametrize("argv", NEVER_AS_ROOT, ids=" ".join)
def test_sudoers_refuses_what_the_bot_never_runs_as_root(argv: tuple[str, ...]) -> None:
    assert rule_for(argv) is None
    assert not built_by_the_code(argv)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_a_sudoers_expression_allows_the_code_builds(data: st.DataObject) -> None:
    """Whatever string a rule's expression accepts is a command some template builds.

    The one exception sudoers cannot express: a journal window that ends before it starts
    (harmless: journalctl prints nothing; the wrapper refuses it).
    """
    program, pattern = data.draw(
        st.sampled_from([r for r in RULES if isinstance(r[1], re.Pattern)])
    )
    assert isinstance(pattern, re.Pattern)
    arguments = data.draw(st.from_regex(pattern.pattern[1:-1], fullmatch=True))
    argv = (program, *arguments.split(" "))
    assert rule_for(argv) is not None
    if program == maillog.JOURNALCTL:
        since, until = (int(word.rpartition("@")[2]) for word in argv[2:4])
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
    if diag.checked_domain(domain) == domain:
        assert ran.returncode == 0, domain
    if ran.returncode == 0:
        assert diag._DOMAIN.fullmatch(domain), domain


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
    assert set(re.findall(r"^    (/[\w/-]+)\)$", block, re.MULTILINE)) == root_tools()
    assert {program for program, _ in RULES} == root_tools()
