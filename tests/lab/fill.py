#!/usr/bin/env python3
"""Fill the lab's Postfix queue over SMTP, then wait until everything is deferred.

    fill.py N [--clear] [--connections 8] [--seed 1] [--timeout SECONDS]

Sends N messages to 127.0.0.1:25 over several connections. Recipients are spread over every
deferring lab domain (some messages have several recipients, some one at the sink), with
varied and a few hostile senders and subjects. Then polls `postqueue -j` until no message is
incoming or active, and prints the count per queue and per delay reason class.
--clear first deletes the whole queue (`postsuper -d ALL`, needs root) and reloads Postfix so
the queue manager forgets the destinations it had found dead.
Standard library only. Needs the lab: tests/lab/lab.sh up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from email.header import Header
from email.utils import formataddr, formatdate

LAB_JSON = "/var/lib/mailqbot-lab/lab.json"
POSTQUEUE = "/usr/sbin/postqueue"
SUSPENDED = "delivery temporarily suspended: "
PROGRESS_EVERY = 3.0

SENDERS = [
    ("Billing", "billing@invoices.test"),
    ("Shop News", "news@shop.test"),
    ("", "noreply@bulk-mailer.test"),
    ("Alice Martin", "alice@partner.test"),
    ("Cron Daemon", "root@mail.lab.test"),
    ("Renée Dubois", "renee.dubois@partner.test"),
    ("<!channel> Security Team", "security@evil.test"),
    ("IT Support <!here>", '"<!channel>"@evil.test'),
    ("Mail Delivery System", ""),  # the null sender, as on a bounce
]
SUBJECTS = [
    "Invoice {n} for your order",
    "Weekly newsletter #{n}",
    "Re: meeting notes",
    "<!channel> urgent: verify your account",
    "Password reset <https://evil.test/reset|click here>",
    "Spe\u200bcial off\u200ber {n}",  # zero-width spaces
    "Delivery delayed: order {n}",
]
LOCAL_PARTS = ["info", "sales", "jane.doe", "bob", "orders", "support", "m.rossi", "postmaster"]
HOSTILE_RCPT = '"<!everyone>"'

REASON_CLASSES = [
    ("greylist", r"said: 450 .*Greylist"),
    ("refused", r"Connection refused"),
    ("connect_timeout", r"Connection timed out"),
    ("greeting_timeout", r"timed out while receiving the initial server greeting"),
    ("banner_421", r"refused to talk to me: 421"),
    ("tls_required", r"TLS is required, but was not offered"),
    ("sasl_failed", r"SASL authentication failed"),
    ("mailbox_full", r"said: 452 "),
    ("lost_connection", r"lost connection with .* while sending end of data"),
    ("dns_servfail", r"Host not found, try again"),
]


def reason_class(reason: str) -> str:
    reason = reason.removeprefix(SUSPENDED)
    for name, pattern in REASON_CLASSES:
        if re.search(pattern, reason):
            return name
    return "other"


class Messages:
    """Message i is the same for a given seed, whichever connection sends it."""

    def __init__(self, domains: dict[str, str], seed: int) -> None:
        self.sink = domains.get("sink")
        self.deferring = sorted(d for c, d in domains.items() if c != "sink")
        self.seed = seed

    def recipients(self, i: int, rng: random.Random) -> list[str]:
        domains = [self.deferring[i % len(self.deferring)]]  # every class, even for small N
        if rng.random() < 0.3:
            extra = self.deferring + ([self.sink] if self.sink else [])
            domains += rng.choices(extra, k=rng.randint(1, 3))
        rcpts = []
        for n, domain in enumerate(domains):
            local = (
                HOSTILE_RCPT if i % 97 == 13 and n == 0 else f"{rng.choice(LOCAL_PARTS)}{i % 50}"
            )
            if f"{local}@{domain}" not in rcpts:
                rcpts.append(f"{local}@{domain}")
        return rcpts

    def build(self, i: int) -> tuple[str, list[str], bytes]:
        rng = random.Random(self.seed * 1_000_003 + i)
        name, sender = SENDERS[i % len(SENDERS)] if i % 5 else rng.choice(SENDERS)
        rcpts = self.recipients(i, rng)
        subject = rng.choice(SUBJECTS).format(n=10000 + i)
        lines = max(1, int(rng.expovariate(1 / 12)))
        body = "".join(
            f"Line {k} of message {i}: lorem ipsum dolor sit amet.\r\n" for k in range(lines)
        )
        headers = [
            f"From: {formataddr((name, sender or 'MAILER-DAEMON@mail.lab.test'), 'utf-8')}",
            f"To: {rcpts[0]}",
            f"Subject: {subject if subject.isascii() else Header(subject, 'utf-8').encode()}",
            f"Date: {formatdate(localtime=True)}",
            f"Message-ID: <fill.{self.seed}.{i}@mail.lab.test>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ]
        return sender, rcpts, ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


class Injector:
    def __init__(self, messages: Messages, total: int, host: str, port: int) -> None:
        self.messages, self.total, self.host, self.port = messages, total, host, port
        self.next_index = itertools.count()
        self.sent = 0
        self.refused = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def worker(self) -> None:
        try:
            with smtplib.SMTP(
                self.host, self.port, local_hostname="fill.lab.test", timeout=120
            ) as smtp:
                smtp.ehlo()
                while not self.errors and (i := next(self.next_index)) < self.total:
                    self.send(smtp, *self.messages.build(i))
        except (OSError, smtplib.SMTPException) as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def send(self, smtp: smtplib.SMTP, sender: str, rcpts: list[str], data: bytes) -> None:
        code, reply = smtp.docmd("MAIL", f"FROM:<{sender}>")
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        accepted = [r for r in rcpts if smtp.docmd("RCPT", f"TO:<{r}>")[0] in (250, 251)]
        if not accepted:
            smtp.rset()
            with self.lock:
                self.refused += 1
            return
        smtp.data(data)
        with self.lock:
            self.sent += 1

    def run(self, connections: int) -> float:
        started = time.monotonic()
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(connections)]
        for thread in threads:
            thread.start()
        next_print = started + PROGRESS_EVERY
        while any(t.is_alive() for t in threads):
            time.sleep(0.1)
            if (now := time.monotonic()) >= next_print:
                next_print += PROGRESS_EVERY
                rate = self.sent / (now - started)
                print(f"injected {self.sent}/{self.total} ({rate:.0f} msg/s)", flush=True)
        return time.monotonic() - started


def queue_lines() -> list[bytes]:
    out = subprocess.run([POSTQUEUE, "-j"], capture_output=True, check=True).stdout
    return out.splitlines()


QUEUE_NAME = re.compile(rb'"queue_name": *"(\w+)"')


def queue_counts(lines: list[bytes]) -> Counter[str]:
    return Counter(m.group(1).decode() for line in lines if (m := QUEUE_NAME.search(line)))


def wait_settled(timeout: float) -> list[bytes]:
    """Until nothing is incoming or active on two polls in a row."""
    deadline = time.monotonic() + timeout
    quiet, last_print = 0, 0.0
    while True:
        lines = queue_lines()
        counts = queue_counts(lines)
        busy = counts["incoming"] + counts["active"] + counts["maildrop"]
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2:
            return lines
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"queue still busy after {timeout:.0f} s: {dict(counts)}")
        if now - last_print >= PROGRESS_EVERY:
            print(
                "waiting: " + ", ".join(f"{q} {n}" for q, n in sorted(counts.items())), flush=True
            )
            last_print = now
        time.sleep(1.0)


def report(lines: list[bytes]) -> None:
    queues: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for line in lines:
        message = json.loads(line)
        queues[message["queue_name"]] += 1
        for rcpt in message.get("recipients", []):
            cls = reason_class(rcpt.get("delay_reason", ""))
            reasons[cls] += 1
            examples.setdefault(cls, rcpt.get("delay_reason", ""))
    print(
        "messages per queue: "
        + (", ".join(f"{q} {n}" for q, n in sorted(queues.items())) or "none")
    )
    print("recipients per delay reason class:")
    for cls, n in sorted(reasons.items()):
        print(f"  {cls:17} {n:7}   e.g. {examples[cls][:110]}")


def clear() -> None:
    print("clearing the queue", flush=True)
    subprocess.run(["/usr/sbin/postsuper", "-d", "ALL"], check=True)
    subprocess.run(["/usr/sbin/postfix", "reload"], check=True, stderr=subprocess.DEVNULL)
    time.sleep(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, metavar="N")
    parser.add_argument("--clear", action="store_true", help="delete the whole queue first")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, help="seconds to wait for the queue to settle")
    parser.add_argument("--lab", default=LAB_JSON, help="the lab description (lab.json)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with open(args.lab) as f:
        lab = json.load(f)
    host, _, port = lab["smtp"].rpartition(":")
    if args.clear:
        clear()
    injector = Injector(Messages(lab["domains"], args.seed), args.count, host, int(port))
    elapsed = injector.run(args.connections)
    if injector.errors:
        print(f"injection failed: {injector.errors[0]}", file=sys.stderr)
        return 1
    print(
        f"injected {injector.sent} messages in {elapsed:.1f} s "
        f"({injector.sent / max(elapsed, 1e-9):.0f} msg/s); {injector.refused} refused"
    )
    try:
        lines = wait_settled(args.timeout or max(120.0, args.count / 100))
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 1
    report(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
