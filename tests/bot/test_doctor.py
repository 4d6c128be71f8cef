"""``mailqbot doctor`` against in-process SSH hosts scripted to answer like Postfix hosts do:
what it sends, how it reads each answer, and the next step for each failure (the real sudo
and sshd are in tests/e2e/test_onboarding_lab.py)."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import doctor
from bot.demo.ssh import ClientKey, Reply, ScriptedSSHServer
from bot.inventory import Host

pytestmark = pytest.mark.usefixtures("no_leaks")  # as every test over the scripted servers
POSTFIX_DU = "/usr/bin/du -sk /var/spool/postfix/deferred"


def mail_host(refuse: set[str] = frozenset(), *, no_rules: bool = False,
              finger: bool = True, log: str = "/var/log/mail.log"):  # fmt: skip
    """A handler answering postconf, date, stat and ``sudo -n -l`` as a Debian host would."""

    async def handler(line: str, stdin: bytes) -> Reply:
        words = shlex.split(line)[4:]  # after `timeout -k 5 N`
        if words[:2] == ["/usr/sbin/postconf", "-h"]:
            values = {"mail_version": "3.9.1", "queue_directory": "/var/spool/postfix",
                      "maillog_file": ""}  # fmt: skip
            return Reply(0, "".join(f"{values[n]}\n" for n in words[2:]).encode())
        if words == ["/bin/date", "+%z"]:
            return Reply(0, b"+0100\n")
        if words[0] == "/usr/bin/stat" and words[-1] == doctor.POSTTLS_FINGER:
            return Reply(0 if finger else 1, b"39232 1700000000\n" if finger else b"")
        if words[0] == "/usr/bin/stat":  # the syslog files the log reader looks for
            found = [p for p in words[3:] if p == log]
            return Reply(0 if found else 1, "".join(f"123 {p}\n" for p in found).encode())
        if words[:3] == ["sudo", "-n", "-l"]:
            if no_rules:
                return Reply(1, b"", b"sudo: a password is required\n")
            asked = " ".join(words[3:])
            return Reply(1, b"") if asked in refuse else Reply(0, f"{asked}\n".encode())
        return Reply(127, b"", f"unexpected: {line}".encode())

    return handler


@pytest.fixture
async def servers(client_key: ClientKey):
    made: list[ScriptedSSHServer] = []

    async def make(handler) -> ScriptedSSHServer:
        server = ScriptedSSHServer(handler, client_key.public_key)
        await server.start()
        made.append(server)
        return server

    yield make
    await asyncio.gather(*(s.close() for s in made))


async def test_a_fleet_table_with_a_next_step_per_failure(
    servers, host_for: Callable[..., Host], tmp_path: Path
) -> None:
    ready = await servers(mail_host())
    partial = await servers(mail_host({POSTFIX_DU, "/usr/sbin/postsuper -r - hold"}))
    bare = await servers(mail_host(no_rules=True, finger=False))
    unknown = await servers(mail_host())
    hosts = [
        host_for(ready, name="mx-ready", known_hosts=ready.write_known_hosts(tmp_path / "a")),
        host_for(partial, name="mx-partial", known_hosts=partial.write_known_hosts(tmp_path / "b")),
        host_for(bare, name="mx-bare", known_hosts=bare.write_known_hosts(tmp_path / "c")),
        host_for(unknown, name="mx-new", known_hosts=tmp_path / "none"),
    ]
    seen: list[int] = []
    reports = await doctor.check_hosts(hosts, progress=lambda done, total: seen.append(done))
    assert sorted(seen) == [1, 2, 3, 4]
    assert [r.ready for r in reports] == [True, False, False, False]
    text = doctor.render(reports)
    first = text.splitlines()[1].split()
    assert first == ["mx-ready", "ready", f"mailqbot@127.0.0.1:{ready.port}", "3.9.1",
                     "UTC+01:00", "/var/spool/postfix", "/var/log/mail.log", "present",
                     "all", "20", "rules"]  # fmt: skip
    steps = text.split("next steps:")[1]
    assert (
        "mx-partial: sudo: sudo refuses 2 of 20 command lines: `/usr/sbin/postsuper -r - hold` "
        "(MAILQBOT_POSTSUPER); `/usr/bin/du -sk /var/spool/postfix/deferred` (MAILQBOT_DU)."
    ) in steps
    assert "mx-bare: sudo: mailqbot has no passwordless sudo rule at all" in steps
    assert "mx-bare: posttls-finger: install posttls-finger" in steps
    assert "mx-new: login: `mailqbot hosts scan mx-new`" in steps
    assert "1 of 4 host(s) ready" in text
    # what doctor asked sudo about: exactly the root command lines the bot sends
    asked = [shlex.split(c)[7:] for c in partial.commands if " -l " in c]
    assert len(asked) == 20
    assert ["/usr/bin/tail", "-c", "+1", "/var/log/mail.log"] in asked


async def test_no_root_command_runs_while_sudo_is_checked(
    servers, host_for: Callable[..., Host], tmp_path: Path
) -> None:
    server = await servers(mail_host())
    host = host_for(server, known_hosts=server.write_known_hosts(tmp_path / "kh"))
    await doctor.check_hosts([host])
    for line in server.commands:
        words = shlex.split(line)[4:]
        assert words[0] != "sudo" or words[:3] == ["sudo", "-n", "-l"], line


def test_sudo_list_asks_about_absolute_paths_only() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        doctor.sudo_list(("postsuper", "-d", "-", "deferred"))
    assert (
        doctor.sudo_list(("/usr/bin/du", "-sk", "/x")).display() == "sudo -n -l /usr/bin/du -sk /x"
    )
