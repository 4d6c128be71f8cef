"""`/mailq diagnose` never shows a password written in-line in a Postfix table.

``smtp_sasl_password_maps = static:user:password``, ``inline:{ [relay]:587 = user:pass }``
or a master.cf ``-o smtp_sasl_password_maps=static:u:p`` override hold the relay password
itself. Diagnose shows such a map as ``static:(redacted)``, a file map as its type and
path, and stats only a file map. The password must appear nowhere: not in the reply's
text, blocks or file, not in the audit trail (``audit_events``, ``command_runs``), not in
the logs, and not in the model the command returns.

Offline, a scripted SSH host answers with postconf output captured from the lab Postfix
(``tests/data/diag-postconf-*.txt``, made with ``postconf -c`` on a copy of its config).
On the lab, the real Postfix is given such a setting for the test and restored afterwards.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot.app.pipeline import Outcome, Request, handle
from bot.app.runtime import open_services
from bot.db.models import AuditEvent
from bot.db.session import make_engine
from bot.demo.ssh import ScriptedSSHServer, generate_client_key
from bot.diag.collect import Diagnoser
from bot.inventory import Inventory, parse_config
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from bot.settings import Settings
from helpers.diaglab import LAB_TOML, postfix_settings

DATA = Path(__file__).resolve().parents[1] / "data"
SECRET = "Zq7-"  # every password in these captures and settings starts with it
LAB_SASL = "hash:/etc/postfix/mailqbot-lab/sasl_passwd"
LAB_SASL_DB = "/etc/postfix/mailqbot-lab/sasl_passwd.db"
Answer = tuple[int, bytes, bytes]


def capture(name: str) -> bytes:
    return (DATA / f"diag-{name}.txt").read_bytes()


def auth_failures() -> bytes:
    """The lab's relay-auth deferrals from a real ``postqueue -j`` capture."""
    lines = (DATA / "postqueue-j.lab.jsonl").read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if b"SASL authentication failed" in line)


def scripted_postfix(main: str, services: str) -> Callable[[str, bytes], Awaitable[Answer]]:
    """A Postfix host for diagnose: ``main`` and ``services`` name the captured
    ``postconf -x`` and ``postconf -P`` output (``postconf-fatal`` fails like postconf does
    on a broken main.cf, quoting the line)."""

    async def handle(command_line: str, _stdin: bytes) -> Answer:
        argv = shlex.split(command_line)
        argv = argv[4:] if argv[:1] == ["timeout"] else argv
        argv = argv[2:] if argv[:2] == ["sudo", "-n"] else argv
        if argv[:2] == ["/usr/sbin/postconf", "-x"]:
            return (1, b"", capture(main)) if main.endswith("fatal") else (0, capture(main), b"")
        if argv[:2] == ["/usr/sbin/postconf", "-P"]:
            return 0, capture(services), b""
        if argv[:2] == ["/usr/sbin/postconf", "-h"]:
            return 0, b"3.7.11\n5d\n5d\n/var/spool/postfix\n", b""
        if argv == ["/usr/sbin/postqueue", "-j"]:
            return 0, auth_failures(), b""
        if argv[:1] == ["/usr/bin/head"]:
            return 0, capture("resolv-conf"), b""
        if argv[:1] == ["/usr/bin/stat"]:
            return 0, capture("stat"), b""
        return 1, b"", b"not scripted\n"

    return handle


@asynccontextmanager
async def scripted_config(tmp_path: Path, main: str, services: str) -> AsyncIterator[Path]:
    key = generate_client_key(tmp_path)
    async with ScriptedSSHServer(scripted_postfix(main, services), key.public_key) as server:
        known = server.write_known_hosts(tmp_path / "known_hosts")
        config = tmp_path / "mailqbot.toml"
        config.write_text(
            f'[ssh]\nuser = "t"\nprivate_key = "{key.private_key}"\nknown_hosts = "{known}"\n'
            f'\n[[hosts]]\nname = "mx1"\naddress = "{server.address}"\nport = {server.port}\n'
            # no DNS answers (nothing listens on port 9): the bot's own checks end quickly
            '\n[diagnose]\nnameservers = ["127.0.0.1"]\nnameserver_port = 9\n'
            'dnsbl_zones = []\nprobe_domains = []\ncheck_timeout = "1s"\nbudget = "3s"\n'
            '\n[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n'
        )
        yield config


async def diagnose(config: Path, db_url: str, text: str) -> Outcome:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=str(config))
    async with open_services(settings) as services:
        return await handle(Request("console", "console:test", text, team_id="T0LAB"), services)


async def stored(db_url: str) -> tuple[str, list[str]]:
    """Every row of the audit trail and the run log as text, and the remote command lines
    the audit trail recorded."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = [
                *(await conn.execute(text("SELECT * FROM audit_events"))).all(),
                *(await conn.execute(text("SELECT * FROM command_runs"))).all(),
            ]
            events = (await conn.execute(select(AuditEvent.detail))).scalars().all()
    finally:
        await engine.dispose()
    commands = [r["command"] for detail in events for r in detail.get("remote", [])]  # type: ignore[attr-defined]
    assert commands, "the audit trail recorded no remote command"
    return repr(rows), commands


async def assert_secret_nowhere(
    outcome: Outcome, db_url: str, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The checks every scenario shares; returns the audited remote command lines."""
    assert outcome.ok, outcome.reply.text
    reply = outcome.reply
    assert SECRET not in reply.text
    assert SECRET not in json.dumps(reply.blocks)
    assert SECRET not in (reply.attachment.content if reply.attachment else "")
    assert SECRET not in reply.console
    rows, commands = await stored(db_url)
    assert SECRET not in rows
    assert caplog.records, "nothing was logged: the log check would prove nothing"
    assert SECRET not in caplog.text
    return commands


def stat_commands(commands: list[str]) -> list[str]:
    return [c for c in commands if "/usr/bin/stat" in c]


@pytest.mark.parametrize(
    ("main", "services", "shown"),
    [
        ("postconf-x-static", "postconf-P", "static:(redacted)"),
        ("postconf-x-inline", "postconf-P", "inline:(redacted)"),
        ("postconf-x", "postconf-P-static", "static:(redacted)"),  # the master.cf -o override
    ],
)
async def test_in_line_password_maps_are_never_shown(
    db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    main: str,
    services: str,
    shown: str,
) -> None:
    assert SECRET.encode() in capture(main) + capture(services)  # the capture holds a password
    caplog.set_level(logging.DEBUG)
    async with scripted_config(tmp_path, main, services) as config:
        outcome = await diagnose(config, db_url, "diagnose mx1")
        async with SSHExecutor() as executor:
            inventory = Inventory(parse_config(config.read_text(), str(config)))
            model = await Diagnoser(
                Remote.reader(executor),
                inventory.get("mx1"),
                inventory.config.diagnose,
                time.time(),
            ).run(None)
    commands = await assert_secret_nowhere(outcome, db_url, caplog)
    assert SECRET not in repr(model)  # nothing downstream of the parser holds it
    assert stat_commands(commands) == []  # an in-line map is never stat'ed
    reply = outcome.reply.text
    assert "Relay credentials rejected" in reply
    assert f"Password map {shown} is not a database file mailqbot can check" in reply


async def test_postconf_errors_are_redacted(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """postconf quotes the offending main.cf line when it cannot parse it (captured)."""
    assert SECRET.encode() in capture("postconf-fatal")
    caplog.set_level(logging.DEBUG)
    async with scripted_config(tmp_path, "postconf-fatal", "postconf-P") as config:
        outcome = await diagnose(config, db_url, "diagnose mx1")
    await assert_secret_nowhere(outcome, db_url, caplog)
    assert "missing '=' after attribute name: \"static:(redacted)" in outcome.reply.text


async def test_a_password_file_is_named_and_checked(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with scripted_config(tmp_path, "postconf-x", "postconf-P") as config:
        outcome = await diagnose(config, db_url, "diagnose mx1")
    commands = await assert_secret_nowhere(outcome, db_url, caplog)
    assert [c.rsplit(" ", 1)[1] for c in stat_commands(commands)] == [LAB_SASL_DB]
    assert f"Password map {LAB_SASL} exists (changed" in outcome.reply.text


@pytest.mark.lab
@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (("-e", f"smtp_sasl_password_maps=static:lab-user:{SECRET}static"), "static:(redacted)"),
        (
            ("-e", f"smtp_sasl_password_maps=inline:{{ [mx.authfail.test] = u:{SECRET}inline }}"),
            "inline:(redacted)",
        ),
        (("-P", f"relay/unix/smtp_sasl_password_maps=static:u:{SECRET}o"), "static:(redacted)"),
        (("-P", f"relay/unix/smtp_sasl_password_maps=proxy:{LAB_SASL}"), f"proxy:{LAB_SASL}"),
    ],
)
async def test_lab_postfix_password_never_leaves_the_host(
    db_url: str,
    lab: object,
    caplog: pytest.LogCaptureFixture,
    change: tuple[str, str],
    shown: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    with postfix_settings(change):
        outcome = await diagnose(LAB_TOML, db_url, "diagnose lab authfail.test")
    commands = await assert_secret_nowhere(outcome, db_url, caplog)
    reply = outcome.reply.text
    assert "Relay credentials rejected" in reply
    assert "SASL login enabled in: relay/unix" in reply
    if shown.startswith("proxy:"):  # a file map behind proxymap: named, and its file checked
        assert f"Password map {shown} exists (changed" in reply
        assert [c.rsplit(" ", 1)[1] for c in stat_commands(commands)] == [LAB_SASL_DB]
    else:
        assert f"Password map {shown} is not a database file" in reply
        assert stat_commands(commands) == []
