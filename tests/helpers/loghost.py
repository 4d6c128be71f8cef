"""A scripted SSH host that emulates the tools ``/mailq log`` runs (``postconf``, ``stat``,
``date``, ``tail -c +N``, ``head -c``, ``grep -F``, ``journalctl``) over a generated log, and
``read``: the log command run on it directly, without the pipeline."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

import commands.log as log_command
from bot.app.services import Services
from bot.context import Context, Identity, Request
from bot.demo.ssh import Reply

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
LOG = "/var/log/postfix.log"
DEFERRED = (
    "{stamp} mail postfix/smtp[{pid}]: {qid}: to=<{rcpt}>, relay={relay}, delay=5.1, "
    "delays=0.01/0.02/5/0, dsn=4.4.1, status=deferred (connect to mx.slow.test[192.0.2.4]:25: "
    "Connection timed out)"
)
SENT = (
    "{stamp} mail postfix/smtp[{pid}]: {qid}: to=<{rcpt}>, relay=mx.ok.test[192.0.2.5]:25, "
    "delay=0.5, delays=0.1/0.1/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
)
NOISE = "{stamp} mail postfix/smtpd[{pid}]: connect from localhost[127.0.0.1]"


def syslog_stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%b %e %H:%M:%S")


def make_log(days: float, stamp=syslog_stamp, hostile: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    """A line of each kind every 5 minutes for ``days`` up to NOW; one ID deferred hourly."""
    lines = []
    t, i = NOW - days * 86400, 0
    while t < NOW:
        rcpt = '"<!channel>"@evil.test' if hostile else f"user{i}@slow.test"
        relay = "<!here>.evil.test[192.0.2.9]:25" if hostile else "mx.slow.test[192.0.2.4]:25"
        qid = "ABCDEF999" if i % 12 == 0 else f"{0xB00000 + i:X}"
        lines.append(DEFERRED.format(stamp=stamp(t), pid=i, qid=qid, rcpt=rcpt, relay=relay))
        lines.append(SENT.format(stamp=stamp(t + 1), pid=i, qid=f"{0xC00000 + i:X}", rcpt="a@b"))
        lines.append(NOISE.format(stamp=stamp(t + 2), pid=i))
        t, i = t + 300, i + 1
    return ("\n".join(lines) + "\n").encode()


@dataclass
class FakeHost:
    """Answers the log-reading commands the way the real tools would."""

    log: bytes = b""
    maillog_file: str = LOG
    journal: bytes = b""
    sudo_ok: bool = True
    seen: list[list[str]] = field(default_factory=list)

    async def __call__(self, command_line: str, _stdin: bytes) -> Reply:
        words = shlex.split(command_line)
        stages, current = [], []  # type: ignore[var-annotated]
        for word in [*words, "|"]:
            if word == "|":
                stages.append(current)
                current = []
            else:
                current.append(word)
        first = stages[0][4:] if stages[0][0] == "timeout" else stages[0]
        if first[:2] == ["sudo", "-n"]:
            if not self.sudo_ok:
                return Reply(1, b"", b"sudo: a password is required\n")
            first = first[2:]
        self.seen.append(first)
        status, out, err = self._tool(first)
        for stage in stages[1:]:
            status, out = self._filter(stage, out)
        return Reply(status, out, err)

    def _tool(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        if argv == ["/usr/sbin/postconf", "-h", "maillog_file"]:
            return 0, f"{self.maillog_file}\n".encode(), b""
        if argv == ["/bin/date", "+%z"]:
            return 0, b"+0000\n", b""
        if argv[:4] == ["/usr/bin/stat", "-L", "-c", "%s %n"]:
            found = [p for p in argv[4:] if p == self.maillog_file and self.log]
            missing = [p for p in argv[4:] if p not in found]
            out = "".join(f"{len(self.log)} {p}\n" for p in found).encode()
            err = "".join(f"stat: cannot statx '{p}': No such file\n" for p in missing).encode()
            return (1 if missing else 0), out, err
        if argv[:2] == ["/usr/bin/tail", "-c"] and argv[3] == self.maillog_file:
            return 0, self.log[int(argv[2]) - 1 :], b""
        if argv[0] == "/bin/journalctl":
            return 0, self.journal, b""
        return 1, b"", f"fake host: {argv} is not simulated\n".encode()

    @staticmethod
    def _filter(stage: list[str], data: bytes) -> tuple[int, bytes]:
        if stage[:2] == ["/usr/bin/head", "-c"]:
            return 0, data[: int(stage[2])]
        assert stage == ["/bin/grep", "-a", "-F", " status="], stage
        kept = [line + b"\n" for line in data.split(b"\n") if b" status=" in line]
        return (0 if kept else 1), b"".join(kept)


async def read(services: Services, text: str) -> tuple[log_command.LogReport, Context]:
    request = Request(source="console", user_id="console:test", text=text)
    ctx = Context(services, request, Identity("console", "console:test", None))
    words = text.split()
    args = log_command.parse(argparse.Namespace(target=words[1], options=words[2:]))
    return await log_command.run(args, ctx), ctx
