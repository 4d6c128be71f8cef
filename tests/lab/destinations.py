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

--servfail also answers every DNS query on ADDR:PORT (UDP) with SERVFAIL.
Everything binds to the addresses given: pass loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
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
)
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
    if cls in ("sasl_failed", "submission"):
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


def smtp_handler(cls: str, host: str, tls: ssl.SSLContext | None = None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
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
    parser.add_argument("--tls-cert", help="certificate (PEM) for tls_ok")
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
