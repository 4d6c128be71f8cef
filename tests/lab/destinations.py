#!/usr/bin/env python3
"""The lab's mail destinations: one SMTP misbehaviour per loopback address (stdlib only).

    destinations.py [--daemon] [--pidfile F] [--log F] [--servfail ADDR:PORT] ADDR=CLASS ...

Each ADDR=CLASS serves CLASS on ADDR port 25. Classes:

  greylist          450 4.7.1 on RCPT
  refused           nothing listens: "Connection refused"
  connect_timeout   a listen(0) socket whose accept queue is full: SYNs are dropped
  greeting_timeout  accepts the connection, never sends a greeting
  banner_421        greets with 421 and hangs up
  tls_required      a plain ESMTP server without STARTTLS (Postfix's TLS policy says encrypt)
  sasl_failed       offers AUTH and answers every attempt with 535
  mailbox_full      452 4.2.2 on RCPT
  lost_connection   takes the message, then closes instead of answering the final dot
  sink              accepts everything with 250
  tls_ok            offers STARTTLS and speaks TLS (--tls-cert/--tls-key), then accepts
  tls_refused       offers STARTTLS, answers it with 454
  port25_filtered   port 25 drops SYNs like connect_timeout; port 587 answers (submission)
  policy_softfail   takes the message, then answers the final dot with 451 4.7.26 (SPF/DKIM)
  relay_sendgrid    a relay like SendGrid, relay_ses like Amazon SES, relay_mailgun like
  relay_ses         Mailgun, relay_postmark like Postmark, on ports 25 and 587 (no STARTTLS):
  relay_mailgun     each checks the login the way the provider does, then refuses with the
  relay_postmark    provider's own words as the sender's local part asks (see RELAY_SCENARIOS)
  relay_ses_tls     relay_ses that offers STARTTLS (--tls-cert) and, as SES does, refuses
                    AUTH and MAIL before it

--servfail also answers every DNS query on ADDR:PORT (UDP) with SERVFAIL.
Everything binds to the addresses given: pass loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import itertools
import os
import signal
import socket
import ssl
import sys

SMTP_PORT = 25
SUBMISSION_PORT = 587
IDLE_TIMEOUT = 120.0  # seconds a client may stay silent before we hang up
SILENT_HOLD = 600.0  # seconds a never-greeting connection is kept open
CLASSES = (
    "greylist",
    "refused",
    "connect_timeout",
    "greeting_timeout",
    "banner_421",
    "tls_required",
    "sasl_failed",
    "mailbox_full",
    "lost_connection",
    "sink",
    "tls_ok",
    "tls_refused",
    "port25_filtered",
    "policy_softfail",
    "relay_sendgrid",
    "relay_ses",
    "relay_mailgun",
    "relay_postmark",
    "relay_ses_tls",
)
RELAYS = ("relay_sendgrid", "relay_ses", "relay_mailgun", "relay_postmark", "relay_ses_tls")
STARTTLS_FIRST = {"relay_ses_tls": "relay_ses"}  # class: the provider it answers as
# Each relay's banner and replies, in the provider's words
# (origins: tests/helpers/relay_refusals.py).
# Scenarios by the sender's local part: unverified, sandbox, quota, rate, suspended; anything
# else: 250.
RELAY_BANNERS = {
    "relay_sendgrid": "220 SG ESMTP service ready at ismtpd-lab-0",
    "relay_ses": "220 email-smtp.amazonaws.com ESMTP SimpleEmailService-d-LAB0000001",
}
RELAY_SCENARIOS: dict[tuple[str, str], tuple[str, str]] = {  # (class, scenario): (stage, reply)
    ("relay_sendgrid", "unverified"): (
        "DATA",
        "550 The from address does not match a verified Sender Identity. Mail cannot be sent "
        "until this error is resolved. Visit https://sendgrid.com/docs/for-developers/"
        "sending-email/sender-identity/ to see the Sender Identity requirements",
    ),
    ("relay_ses", "unverified"): (
        "DATA",
        "554 Message rejected: Email address is not verified. The following identities failed "
        "the check in region EU-WEST-1: {sender}",
    ),
    ("relay_ses", "sandbox"): (
        "DATA",
        "554 Message rejected: Email address is not verified. The following identities failed "
        "the check in region EU-WEST-1: {recipient}",
    ),
    ("relay_ses", "quota"): ("DATA", "454 Throttling failure: Daily message quota exceeded."),
    ("relay_ses", "rate"): ("DATA", "454 Throttling failure: Maximum sending rate exceeded."),
    ("relay_ses", "suspended"): (
        "DATA",
        "554 Message rejected: Sending paused for this account. For more information, please "
        "check the inbox of the email address associated with your AWS account.",
    ),
    ("relay_mailgun", "unverified"): ("RCPT", "550 5.7.1 Relaying denied"),
    ("relay_mailgun", "sandbox"): (
        "DATA",
        "421 Domain sandbox0lab.mailgun.test is not allowed to send: Sandbox subdomains are for "
        "test purposes only. Please add your own domain or add the address to authorized "
        "recipients in Account Settings.",
    ),
    ("relay_postmark", "unverified"): (
        "DATA",
        "550 The 'From' address you supplied ({sender}) is not a Sender Signature on your "
        "account. Please add and confirm this address in order to be able to use it in the "
        "'From' field of your messages.",
    ),
}
NO_LOGIN = {
    "relay_sendgrid": "550 Unauthenticated senders not allowed",
    "relay_ses": "530 Authentication required",
}
STARTTLS_MISSING = "530 Must issue a STARTTLS command first"
# A SendGrid API key of an account whose credits are used up (the lab's own name for it).
NO_CREDITS_KEY = "SG.lab-key-out-of-credits"
SOFTFAIL_REPLY = (
    "451 4.7.26 This message is unauthenticated and was temporarily rejected: SPF did not "
    "pass for the sender domain and no DKIM signature was found; try again later"
)
_queue_ids = itertools.count(1)


class Hangup(Exception):
    """The session ends without a reply."""


def mx_name(addr: str, names: dict[str, str]) -> str:
    return names.get(addr, "mx.lab.test")


def rcpt_reply(cls: str, arg: str) -> str:
    addr = arg.partition(":")[2].strip().split(" ")[0]
    if cls == "greylist":
        return (
            f"450 4.7.1 {addr}: Recipient address rejected: "
            "Greylisted, please try again in 300 seconds"
        )
    if cls == "mailbox_full":
        return f"452 4.2.2 {addr}: Recipient address rejected: Mailbox full"
    return "250 2.1.5 Ok"


def ehlo_reply(cls: str, host: str) -> list[str]:
    lines = [host, "PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES"]
    if cls in ("tls_ok", "tls_refused"):
        lines.append("STARTTLS")
    if cls in ("sasl_failed", "submission", *RELAYS):
        lines.append("AUTH PLAIN LOGIN")
    lines.append("8BITMIME")
    return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]


async def read_data(reader: asyncio.StreamReader) -> int:
    size = 0
    while True:
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
        if not line:
            raise Hangup
        if line in (b".\r\n", b".\n"):
            return size
        size += len(line)


def answer(cls: str, host: str, verb: str, arg: str) -> list[str]:
    if verb == "EHLO":
        return ehlo_reply(cls, host)
    if verb == "HELO":
        return [f"250 {host}"]
    if verb == "STARTTLS":
        if cls == "tls_ok":
            return ["220 2.0.0 Ready to start TLS"]
        return ["454 4.7.0 TLS not available due to local problem"]
    if verb == "AUTH":
        return ["535 5.7.8 Error: authentication failed: authentication failure"]
    if verb == "MAIL":
        return ["250 2.1.0 Ok"]
    if verb == "RCPT":
        return [rcpt_reply(cls, arg)]
    if verb == "DATA":
        return ["354 End data with <CR><LF>.<CR><LF>"]
    if verb in ("RSET", "NOOP"):
        return ["250 2.0.0 Ok"]
    if verb == "QUIT":
        return ["221 2.0.0 Bye"]
    return ["502 5.5.2 Error: command not recognized"]


async def smtp_session(
    cls: str,
    host: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: ssl.SSLContext | None = None,
) -> None:
    def send(lines: list[str]) -> None:
        writer.write("".join(f"{line}\r\n" for line in lines).encode())

    if cls == "greeting_timeout":
        await asyncio.wait_for(reader.read(), SILENT_HOLD)  # until the client gives up
        return
    if cls == "banner_421":
        send([f"421 4.7.0 {host} Error: too many connections from 127.0.0.1; try again later"])
        await writer.drain()
        return
    send([f"220 {host} ESMTP lab {cls}"])
    while True:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
        if not line:
            return
        verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
        verb = verb.upper()
        reply = answer(cls, host, verb, arg)
        send(reply)
        if verb == "QUIT":
            await writer.drain()
            return
        if verb == "STARTTLS" and cls == "tls_ok" and tls is not None:
            await writer.drain()
            await writer.start_tls(tls)
            continue
        if verb == "DATA":
            await writer.drain()
            size = await read_data(reader)
            if cls == "lost_connection":
                raise Hangup
            if cls == "policy_softfail":
                send([SOFTFAIL_REPLY])
                continue
            send([f"250 2.0.0 Ok: {size} bytes queued as LAB{next(_queue_ids):08X}"])


def relay_login(cls: str, user: str, password: str) -> str:
    """The reply to AUTH, checking the login the way the provider does."""
    if cls == "relay_sendgrid" and user != "apikey":  # the user name is the word apikey
        return "535 Authentication failed: Bad username / password"
    if cls == "relay_sendgrid" and password == NO_CREDITS_KEY:
        return "451 Authentication failed: Maximum credits exceeded"
    if cls == "relay_ses" and len(password) == 40:  # an IAM secret key, not SMTP credentials
        return "535 Authentication Credentials Invalid"
    if cls == "relay_postmark" and user != password:  # the server token is both
        return "535 5.7.8 Authentication credentials invalid"
    if cls == "relay_mailgun" and "@" not in user:  # a domain's SMTP user, not api + API key
        return "535 5.7.0 Mailgun is not loving your login or password"
    return "235 2.7.0 Authentication successful"


def decode_b64(text: str) -> str:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        return ""


async def read_auth(arg: str, reader: asyncio.StreamReader, send) -> tuple[str, str]:
    """AUTH PLAIN (with or without an initial response) or LOGIN: (user, password)."""
    mechanism, _, initial = arg.partition(" ")
    if mechanism.upper() == "LOGIN":
        send(["334 VXNlcm5hbWU6"])
        user = decode_b64((await reader.readline()).decode())
        send(["334 UGFzc3dvcmQ6"])
        return user, decode_b64((await reader.readline()).decode())
    if not initial:
        send(["334 "])
        initial = (await reader.readline()).decode()
    _authzid, _, rest = decode_b64(initial).partition("\0")
    user, _, password = rest.partition("\0")
    return user, password


async def relay_session(
    cls: str,
    host: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: ssl.SSLContext | None = None,
) -> None:
    """A relay provider's SMTP service: login, then the scenario the sender asks for.

    A STARTTLS_FIRST class offers STARTTLS and refuses AUTH and MAIL until the client used it,
    then answers as its provider."""

    def send(lines: list[str]) -> None:
        writer.write("".join(f"{line}\r\n" for line in lines).encode())

    plain = cls in STARTTLS_FIRST  # still before STARTTLS, which this relay requires
    cls = STARTTLS_FIRST.get(cls, cls)
    send([RELAY_BANNERS.get(cls, f"220 {host} ESMTP lab {cls}")])
    logged_in, sender, recipient, scenario = False, "", "", ""
    while True:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
        if not line:
            return
        verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
        verb = verb.upper()
        if plain and verb == "EHLO":
            reply = ehlo_reply(cls, host)
            send([*reply[:-1], "250-STARTTLS", reply[-1]])
            continue
        if plain and verb == "STARTTLS" and tls is not None:
            send(["220 Ready to start TLS"])
            await writer.drain()
            await writer.start_tls(tls)
            plain = False
            continue
        if plain and verb in ("AUTH", "MAIL"):
            print(f"{cls}: {verb} before STARTTLS: 530", flush=True)
            send([STARTTLS_MISSING])
            continue
        if verb == "AUTH":
            await writer.drain()
            user, password = await read_auth(arg, reader, send)
            reply = relay_login(cls, user, password)
            print(f"{cls}: AUTH {arg.split(' ')[0]} as {user!r}: {reply[:3]}", flush=True)
            logged_in = reply.startswith("235")
            send([reply])
            continue
        if verb == "MAIL":
            sender = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
            scenario = sender.split("@")[0].lower()
            if not logged_in:
                send([NO_LOGIN.get(cls, "530 5.7.0 Authentication required")])
                continue
        elif verb == "RCPT":
            recipient = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
            stage, reply = RELAY_SCENARIOS.get((cls, scenario), ("", ""))
            if stage == "RCPT":
                send([reply])
                continue
        reply_lines = answer(cls, host, verb, arg)
        send(reply_lines)
        if verb == "QUIT":
            await writer.drain()
            return
        if verb == "DATA":
            await writer.drain()
            size = await read_data(reader)
            stage, reply = RELAY_SCENARIOS.get((cls, scenario), ("", ""))
            if stage == "DATA":
                send([reply.format(sender=sender, recipient=recipient)])
                continue
            send([f"250 Ok: {size} bytes queued as LAB{next(_queue_ids):08X}"])


def smtp_handler(cls: str, host: str, tls: ssl.SSLContext | None = None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if cls in RELAYS:
                await relay_session(cls, host, reader, writer, tls)
                return
            await smtp_session(cls, host, reader, writer, tls)
        except (TimeoutError, Hangup, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort() if cls == "lost_connection" else writer.close()

    return handle


class ServFail(asyncio.DatagramProtocol):
    """Answers each DNS query with SERVFAIL, echoing its question."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[2] & 0x80:  # too short, or already a response
            return
        end = 12
        if int.from_bytes(data[4:6], "big") >= 1:
            while end < len(data) and data[end]:
                end += 1 + data[end]
            end += 5  # the root label, QTYPE, QCLASS
        question = data[12:end] if end <= len(data) else b""
        flags = 0x8000 | (data[2] & 0x79) << 8 | 0x80 | 2  # QR, opcode+RD copied, RA, SERVFAIL
        counts = (1 if question else 0).to_bytes(2, "big") + bytes(6)
        self.transport.sendto(data[:2] + flags.to_bytes(2, "big") + counts + question, addr)  # type: ignore[attr-defined]


def listening_socket(addr: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(backlog)
    return sock


def fill_backlog(addr: str, port: int) -> socket.socket:
    """One connection that is never accepted fills a listen(0) queue; later SYNs are dropped."""
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.settimeout(5)
    filler.connect((addr, port))
    return filler


def bind_all(targets: list[tuple[str, str]], servfail: tuple[str, int] | None):
    """Bind every socket up front, so errors show before we daemonise."""
    smtp, keep = [], []
    for addr, cls in targets:
        if cls == "refused":
            continue
        if cls in ("connect_timeout", "port25_filtered"):
            keep.append(listening_socket(addr, SMTP_PORT, 0))
            keep.append(fill_backlog(addr, SMTP_PORT))
            if cls == "port25_filtered":  # only port 25 is filtered: submission answers
                smtp.append(("submission", addr, listening_socket(addr, SUBMISSION_PORT, 128)))
            continue
        if cls in RELAYS:  # relay providers take mail on 587 (and 25)
            smtp.append((cls, addr, listening_socket(addr, SUBMISSION_PORT, 128)))
        smtp.append((cls, addr, listening_socket(addr, SMTP_PORT, 128)))
    udp = None
    if servfail:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(servfail)
    return smtp, keep, udp


async def serve(smtp, udp, names: dict[str, str], tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    servers = [
        await asyncio.start_server(smtp_handler(cls, mx_name(addr, names), tls), sock=sock)
        for cls, addr, sock in smtp
    ]
    if udp is not None:
        await loop.create_datagram_endpoint(ServFail, sock=udp)
    print(f"destinations: serving {len(servers)} SMTP listeners", flush=True)
    await stop
    for server in servers:
        server.close()


def daemonise(pidfile: str | None, log: str) -> None:
    child = os.fork()
    if child:  # the caller waits until the grandchild's pid is on disk
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    os.setsid()
    grandchild = os.fork()
    if grandchild:
        if pidfile:
            write_pidfile(pidfile, grandchild)
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)


def write_pidfile(path: str, pid: int) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(f"{pid}\n")
    os.replace(path + ".tmp", path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="ADDR=CLASS")
    parser.add_argument("--servfail", metavar="ADDR:PORT")
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="ADDR=HOSTNAME",
        help="the host name each server greets with",
    )
    parser.add_argument("--tls-cert", help="certificate (PEM) for tls_ok and relay_ses_tls")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--pidfile")
    parser.add_argument("--log", default=os.devnull)
    args = parser.parse_intermixed_args(argv)
    args.pairs = []
    for target in args.targets:
        addr, _, cls = target.partition("=")
        if cls not in CLASSES or not addr.startswith("127."):
            parser.error(
                f"{target!r}: want a loopback ADDR=CLASS, CLASS one of {', '.join(CLASSES)}"
            )
        args.pairs.append((addr, cls))
    if args.servfail:
        host, _, port = args.servfail.rpartition(":")
        if not host.startswith("127."):
            parser.error("--servfail: loopback addresses only")
        args.servfail = (host, int(port))
    args.names = dict(n.partition("=")[::2] for n in args.name)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    smtp, keep, udp = bind_all(args.pairs, args.servfail)
    if args.daemon:
        daemonise(args.pidfile, args.log)
    elif args.pidfile:
        write_pidfile(args.pidfile, os.getpid())
    try:
        asyncio.run(serve(smtp, udp, args.names, tls))
    finally:
        if args.pidfile and os.path.exists(args.pidfile):
            with open(args.pidfile) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(args.pidfile)
    del keep
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
