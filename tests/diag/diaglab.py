"""Helpers for the diagnose lab tests: configs, and messages injected and removed again."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import time
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
