"""Helpers for the diagnose lab tests: configs, and messages injected and removed again."""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.diag.config import DiagnoseSection
from bot.inventory import Config, parse_config

LAB_TOML = Path(__file__).resolve().parents[1] / "lab" / "mailqbot.toml"


def lab_config(**diagnose: object) -> Config:
    """The lab's config with some ``[diagnose]`` settings replaced."""
    config = parse_config(LAB_TOML.read_text(), str(LAB_TOML))
    section = DiagnoseSection.model_validate({**config.diagnose.model_dump(), **diagnose})
    return config.model_copy(update={"diagnose": section})


def inject(sender: str, recipient: str) -> str:
    """Send one message to the lab Postfix; return its queue ID."""
    with smtplib.SMTP("127.0.0.1", 25, local_hostname="diag.lab.test", timeout=10) as smtp:
        smtp.mail(sender)
        code, _ = smtp.rcpt(recipient)
        assert code == 250
        code, reply = smtp.data(
            f"From: {sender}\r\nTo: {recipient}\r\nSubject: diagnose test\r\n\r\nhello\r\n"
        )
    match = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
    assert code == 250, reply
    assert match, reply
    return match.group(1).decode()


def wait_deferred(queue_id: str, timeout: float = 30) -> str:
    """Wait until Postfix deferred the message; return its delay reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["/usr/sbin/postqueue", "-j"], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            record = json.loads(line)
            if record["queue_id"] == queue_id and record["queue_name"] == "deferred":
                return str(record["recipients"][0].get("delay_reason", ""))
        time.sleep(0.3)
    raise AssertionError(f"{queue_id} was not deferred within {timeout} s")


def delete(queue_id: str) -> None:
    subprocess.run(["/usr/sbin/postsuper", "-d", queue_id], capture_output=True, check=False)


MAIN_CF = Path("/etc/postfix/main.cf")
MASTER_CF = Path("/etc/postfix/master.cf")


@contextmanager
def postfix_settings(*changes: tuple[str, str]) -> Iterator[None]:
    """Change the lab Postfix's settings for a while: each change is a postconf mode and a
    ``name=value`` (``("-e", "relayhost=...")`` for main.cf, ``("-P", "relay/unix/...")`` for
    master.cf). Afterwards both files are put back byte for byte, with their mode and owner.
    Postfix is not reloaded. Run it holding the lab lock: every lab test reads these files."""
    saved = {path: (path.read_bytes(), path.stat()) for path in (MAIN_CF, MASTER_CF)}
    try:
        for mode, setting in changes:
            subprocess.run(["/usr/sbin/postconf", mode, setting], check=True, capture_output=True)
        yield
    finally:
        for path, (content, stat) in saved.items():
            path.write_bytes(content)
            os.chown(path, stat.st_uid, stat.st_gid)
            path.chmod(stat.st_mode & 0o7777)
