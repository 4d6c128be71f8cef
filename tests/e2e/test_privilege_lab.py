"""Least privilege on the real lab: the real sudo reading deploy/sudoers.mailqbot, and the
forced-command login through deploy/mailqbot-wrapper, end to end.

``lab.sh up`` installs both from deploy/: the user ``mailqbot`` with the sudoers snippet (the
bot sends ``sudo -n``), and the user ``mailqbot-fc``, whose key runs only
/usr/local/libexec/mailqbot-wrapper, with ``sudo = false`` for the host (the wrapper gets
root through its one sudo rule). The root commands come from tests/helpers/all_commands.py, which
calls every template over its input domain.

The lab has no container runtime: sudo answers ``sudo -l`` only for a program that exists, so
the questions about ``/usr/bin/docker`` and ``/usr/bin/podman`` are asked where stand-in
scripts sit at those paths, seen by that one sudo alone (tests/helpers/standins.py).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.pipeline import Outcome, Request, handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.db.models import AuditEvent
from bot.errors import CommandFailed
from bot.inventory import Host, Inventory, parse_config
from bot.postfix import postsuper, tools
from bot.remote.command import RemoteCommand
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from helpers.all_commands import NEVER_AS_ROOT, ROOT, built_by_the_code, root_commands, root_tools
from helpers.labbot import LAB_CONFIG
from helpers.labmail import POSTQUEUE, ids_from, inject, new_sender, remove
from helpers.labqueue import LAB_DIR
from helpers.standins import stand_ins, why_not

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]

SUDO_USER, WRAPPER_USER = "mailqbot", "mailqbot-fc"
WRAPPER = Path("/usr/local/libexec/mailqbot-wrapper")
DEPLOY = ROOT / "deploy"
OPERATOR, APPROVER, ADMIN = "U0OPERATOR", "U0APPROVER", "U0ADMIN"
# The database is not the subject here: one kind is enough.
sqlite_only = pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)


ABSENT = sorted(tool for tool in root_tools() if not Path(tool).exists())  # docker, podman


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The words that run a command where the absent root programs exist (none if none)."""
    if not ABSENT:
        return ()
    layer = tmp_path_factory.mktemp("stand-ins")
    if reason := why_not(layer / "probe"):
        pytest.fail(f"cannot ask sudo about {', '.join(ABSENT)}: {reason}")
    return tuple(stand_ins(dict.fromkeys(ABSENT, "#!/bin/sh\nexit 127\n"), layer / "layer"))


def sudo_allows(user: str, argv: tuple[str, ...], stand_in: tuple[str, ...] = ()) -> bool:
    """``sudo -l -U USER COMMAND``: the real sudo's answer (prints the rule or exits 1).
    A root program absent here is asked about in ``stand_in``: without it, sudo would answer
    "command not found" and every refusal would pass for nothing."""
    if os.geteuid() != 0:
        pytest.skip("asking sudo about another user's rules needs root")
    prefix = stand_in if argv and argv[0] in ABSENT else ()
    assert prefix or not argv or argv[0] not in ABSENT, "pass the stand_in fixture"
    ran = subprocess.run(
        [*prefix, "sudo", "-n", "-l", "-U", user, *argv], capture_output=True, text=True,
        timeout=10,
    )  # fmt: skip
    assert ran.returncode in (0, 1), ran.stderr
    assert "command not found" not in ran.stderr or argv[0] not in root_tools(), ran.stderr
    return ran.returncode == 0


def near_misses(argv: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Root commands one edit away from ``argv`` that no template builds."""
    tool, *words = argv
    edits = [tuple(argv[:-1]), (*argv, "x"), (*argv, "/etc/shadow"), (tool, "-d", "ALL", *words)]
    edits += [(*argv[:i], "ALL", *argv[i + 1 :]) for i in range(1, len(argv))]
    edits += [(*argv[:i], "/etc/shadow", *argv[i + 1 :]) for i in range(1, len(argv))]
    return [edit for edit in edits if not built_by_the_code(edit)]


# --- the real sudo and deploy/sudoers.mailqbot -----------------------------------------------


def test_the_lab_installs_deploys_files() -> None:
    """lab.sh copies deploy/ as is (the wrapper's sudoers only names the lab's user)."""
    assert (
        Path("/etc/sudoers.d/mailqbot").read_bytes() == (DEPLOY / "sudoers.mailqbot").read_bytes()
    )
    wrapper_rules = (DEPLOY / "sudoers.mailqbot-wrapper").read_text()
    assert Path("/etc/sudoers.d/mailqbot-wrapper").read_text() == wrapper_rules.replace(
        "User_Alias MAILQBOT_WRAPPER_USER = mailqbot\n",
        f"User_Alias MAILQBOT_WRAPPER_USER = {WRAPPER_USER}\n",
    )
    assert WRAPPER.read_bytes() == (DEPLOY / "mailqbot-wrapper").read_bytes()
    mode = WRAPPER.stat()
    assert (mode.st_uid, stat.S_IMODE(mode.st_mode)) == (0, 0o755)
    info = json.loads((LAB_DIR / "lab.json").read_text())
    assert (info["wrapper_user"], info["wrapper"]) == (WRAPPER_USER, str(WRAPPER))


def test_visudo_accepts_the_installed_rules() -> None:
    ran = subprocess.run(["visudo", "-c"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_real_sudo_allows_every_root_command_the_code_builds(stand_in: tuple[str, ...]) -> None:
    commands = {command.argv for command in root_commands()}
    assert len(commands) > 40
    refused = [
        " ".join(argv) for argv in sorted(commands) if not sudo_allows(SUDO_USER, argv, stand_in)
    ]
    assert refused == []


def test_real_sudo_refuses_every_other_root_command(stand_in: tuple[str, ...]) -> None:
    """The listed commands the bot never runs, and each one-word edit of those it runs."""
    tried = set(NEVER_AS_ROOT)
    for command in root_commands():
        tried.update(near_misses(command.argv))
    assert len(tried) > 300
    allowed = [" ".join(a) for a in sorted(tried) if sudo_allows(SUDO_USER, a, stand_in)]
    assert allowed == []


def test_the_wrapper_login_may_run_only_the_wrapper_as_root() -> None:
    postcat = ("/usr/sbin/postcat", "-eh", "-q", "4B7D3C1A2B")
    assert sudo_allows(WRAPPER_USER, (str(WRAPPER), "--privileged", *postcat))
    for argv in [postcat, ("/usr/sbin/postsuper", "-d", "-", "deferred"), ("/bin/sh",)]:
        assert not sudo_allows(WRAPPER_USER, argv), argv


# --- the forced-command login: deploy/mailqbot-wrapper -----------------------------------


def wrapper_config() -> str:
    """The lab's config with the lab host reached as mailqbot-fc, without sudo."""
    text = LAB_CONFIG.read_text()
    changed = text.replace('user = "mailqbot"\n', f'user = "{WRAPPER_USER}"\n', 1)
    changed = changed.replace("sudo = true\n", "sudo = false\n", 1)
    assert changed.count(WRAPPER_USER) == 1
    assert "sudo = false" in changed
    return changed


def wrapper_host() -> Host:
    host = Inventory(parse_config(wrapper_config(), "wrapper.toml")).get("lab")
    assert (host.user, host.sudo) == (WRAPPER_USER, False)
    return host


async def test_the_wrapper_refuses_a_shell_and_what_the_bot_never_runs() -> None:
    """Refused with exit 126 and a message; nothing ran (the oracle: the queue, the output)."""
    host = wrapper_host()
    attempts = [
        RemoteCommand(("/usr/bin/id",)),
        RemoteCommand(("/bin/sh", "-c", "id")),
        # The -H ALL form is refused; were it not, it would change nothing (no held mail in
        # deferred), so the shared lab stays safe either way.
        RemoteCommand(("/usr/sbin/postsuper", "-H", "ALL", "deferred"), sudo=True),
        RemoteCommand(("/usr/sbin/postsuper", "-H", "4B7D3C1A2B", "deferred"), sudo=True),
        RemoteCommand(
            ("/usr/bin/tail", "-c", "+1", "/etc/shadow"), pipe_to=(("/usr/bin/head", "-c", "99"),)
        ),
        RemoteCommand(("/usr/sbin/postqueue", "-j", "-c", "/tmp")),
    ]
    async with SSHExecutor() as ex:
        for command in attempts:
            with pytest.raises(CommandFailed) as caught:
                await ex.run(host, command)
            assert caught.value.exit_status == 126, command
            assert "mailqbot-wrapper: refused: " in caught.value.stderr
            assert "root:" not in caught.value.user_message


async def test_the_wrapper_lets_only_queue_ids_reach_postsuper() -> None:
    """Standard input is filtered: postsuper never sees a line that is not a queue ID."""
    sender = new_sender()
    planned = inject(sender, 2)
    try:
        stdin = b"../../etc/passwd\nALL\n" + tools.ids_input(sorted(planned))
        async with SSHExecutor() as ex:
            ran = await ex.run(wrapper_host(), tools.change("hold", "deferred", sudo=False),
                               stdin=stdin)  # fmt: skip
        assert not ran.command_line.count("sudo")
        report = postsuper.parse_report("hold", ran.stderr)
        assert (set(report.changed), report.count, report.other) == (planned, 2, ())
        assert ids_from(sender, "hold") == planned
    finally:
        remove(ids_from(sender))


async def ask(services: Services, user: str, text: str) -> Outcome:
    source = "console" if user.startswith("console:") else "slack"
    request = Request(source, user, text, team_id="T0LAB", channel_id="C0OPS")
    return await handle(request, services)


def plan_id(outcome: Outcome) -> str:
    match = re.search(r"Plan (p[0-9a-f]{10})", outcome.reply.text)
    assert match, outcome.reply.text
    return match.group(1)


def remote_lines(value: Any) -> list[str]:
    """Every remote command line recorded anywhere in an audit detail."""
    if isinstance(value, str):
        return [value] if value.startswith("timeout -k 5 ") else []
    if isinstance(value, dict):
        return [line for v in value.values() for line in remote_lines(v)]
    if isinstance(value, list):
        return [line for v in value for line in remote_lines(v)]
    return []


@pytest.fixture
async def services(db_url: str) -> AsyncIterator[Services]:
    inventory = Inventory(parse_config(wrapper_config(), "wrapper.toml"))
    async with open_services(Settings(DATABASE_URL=db_url), inventory) as opened:
        yield opened


def deferred_ids() -> list[str]:
    out = subprocess.run([POSTQUEUE, "-j"], check=True, capture_output=True, timeout=120).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [str(r["queue_id"]) for r in records if r["queue_name"] == "deferred"][:20]


@sqlite_only
async def test_summary_show_log_hold_and_purge_through_the_wrapper(services: Services) -> None:
    summary = await ask(services, "console:lab", "summary lab")
    assert summary.ok, summary.reply.text
    assert "Deferred spool on disk:" in summary.reply.text  # du, as root through the wrapper

    for queue_id in deferred_ids():  # another lab user may delete one meanwhile
        shown = await ask(services, "console:lab", f"show lab {queue_id} body")
        if shown.ok:
            break
    assert shown.ok, shown.reply.text
    assert queue_id in shown.reply.text

    log = await ask(services, "console:lab", "log lab since=10m")
    assert log.ok, log.reply.text

    sender = new_sender()
    planned = inject(sender, 3)
    try:
        held = await ask(services, OPERATOR, f"hold lab sender={sender}")
        assert "Put on hold 3 of 3 selected messages; Postfix reported 3." in held.reply.text
        assert ids_from(sender, "hold") == planned
        released = await ask(services, OPERATOR, f"release lab sender={sender}")
        assert "Released 3 of 3 selected messages" in released.reply.text

        asked = await ask(services, APPROVER, f'purge lab sender={sender} why="wrapper test"')
        assert asked.ok, asked.reply.text
        approved = await ask(services, ADMIN, f"approve {plan_id(asked)}")
        assert "Deleted 3 of 3 planned messages; Postfix reported 3." in approved.reply.text
        assert ids_from(sender) == set()
    finally:
        remove(ids_from(sender))

    async with services.sessions() as session:
        details = (await session.scalars(select(AuditEvent.detail))).all()
    lines = remote_lines(list(details))
    assert [line for line in lines if " sudo " in line] == []
    for tool in ("postsuper -h - deferred", "postsuper -H - hold", "postsuper -d - deferred",
                 "postcat -eh -q", "postcat -b -q", "du -sk", "tail -c +"):  # fmt: skip
        assert any(tool in line for line in lines), tool


# --- the journal of a unit and a container's logs, through sudo and the wrapper ----------------

UNIT_SOURCE = '\n[log]\nsource = "journal"\nunit = "postfix@-.service"\n'
CONTAINER_SOURCE = '\n[log]\nsource = "container"\ncontainer = "mail-postfix-1"\nruntime = "{}"\n'


async def log_through(config: str, db_url: str) -> tuple[Outcome, list[str]]:
    """``log lab since=10m`` with this config: the outcome and the command lines it sent."""
    inventory = Inventory(parse_config(config, "log.toml"))
    async with open_services(Settings(DATABASE_URL=db_url), inventory) as services:
        outcome = await ask(services, "console:lab", "log lab since=10m")
        async with services.sessions() as session:
            details = (await session.scalars(select(AuditEvent.detail))).all()
    return outcome, remote_lines(list(details))


@sqlite_only
@pytest.mark.parametrize("login", ["sudo", "wrapper"])
async def test_the_journal_of_a_unit_through_sudo_and_the_wrapper(login: str, db_url: str) -> None:
    """The lab has journalctl but no journal: the read runs as root (the real sudo rule, or
    the wrapper and its rule) and finds no line, instead of being refused."""
    config = LAB_CONFIG.read_text() if login == "sudo" else wrapper_config()
    outcome, lines = await log_through(config + UNIT_SOURCE, db_url)
    assert outcome.ok, outcome.reply.text
    assert "the journal (unit postfix@-.service)" in outcome.reply.text
    prefix = "sudo -n " if login == "sudo" else ""
    read = f"{prefix}/bin/journalctl _SYSTEMD_UNIT=postfix@-.service --since=@"
    assert any(read in line for line in lines), lines


@sqlite_only
@pytest.mark.parametrize("runtime", ["docker", "podman"])
@pytest.mark.parametrize("login", ["sudo", "wrapper"])
async def test_a_containers_logs_reach_the_runtime_through_sudo_and_the_wrapper(
    login: str, runtime: str, db_url: str
) -> None:
    """The lab has no container runtime, so the read fails; how it fails shows the rules let
    it through as root: sudo says "command not found" only for a command a rule allows (for
    another it asks for a password), and the wrapper, as root, runs the program and the
    system reports it missing. Never a refusal."""
    program = f"/usr/bin/{runtime}"
    if Path(program).exists():
        pytest.skip(f"{program} exists on this lab: the read would reach a real runtime")
    config = LAB_CONFIG.read_text() if login == "sudo" else wrapper_config()
    outcome, lines = await log_through(config + CONTAINER_SOURCE.format(runtime), db_url)
    assert not outcome.ok
    text = outcome.reply.text
    missing = f"{program}: command not found" if login == "sudo" else "No such file or directory"
    assert missing in text, text
    assert "refused" not in text, text
    assert "password" not in text, text
    read = f"{program} logs --timestamps --since="
    assert any(read in line and "mail-postfix-1" in line for line in lines), lines
