"""Every parser of remote output works in time linear in the length of its input, also on
hostile input (long runs of the characters its patterns care about)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.diag import host
from bot.errors import MailqbotError
from bot.postfix import maillog, postcat, postfix, postsuper, qshape, spool
from bot.postfix.filter import QueueFilter
from bot.postfix.postfix import PostqueueJsonParser
from helpers.growth import grows_linearly

# -- qshape's domain of an address holding newlines (its slow path) ----------------------

OLD_UP_TO_LAST_AT = re.compile(r".*@")
OLD_EDGE_DOTS = re.compile(r"\.?(.+?)\.?$")


def old_slow_domain(address: str) -> str:
    """The former patterns (Perl's): a search restarted inside every line that failed."""
    lowered = address.translate(qshape._ASCII_LOWER)
    domain = OLD_UP_TO_LAST_AT.sub("", lowered, count=1)
    return OLD_EDGE_DOTS.sub(r"\1", domain.replace("..", "."), count=1)


@given(st.text(alphabet="a.@\nB", max_size=30))
@settings(max_examples=3000)
def test_qshape_domain_with_newlines_is_the_former_one(address: str) -> None:
    assert qshape._slow_domain(address) == old_slow_domain(address)


@pytest.mark.parametrize("make", [lambda n: "\n" + "a" * n + "\nx", lambda n: "a@" + "b." * n])
def test_qshape_domain_is_linear(make: Callable[[int], str]) -> None:
    assert grows_linearly(qshape.qshape_domain, make, 8192)


# -- posttls-finger's certificate line (the server's certificate sets its text) ----------

OLD_CERT_NAMES = re.compile(r"subject_CN=([^,]*), issuer_CN=([^,]*)")


@given(st.lists(st.sampled_from(["subject_CN=", ", issuer_CN=", ",", "a", " "])).map("".join))
@settings(max_examples=3000)
def test_certificate_names_are_the_former_ones(line: str) -> None:
    match = OLD_CERT_NAMES.search(line)
    assert host._cert_names(line) == (match.groups() if match else None)


def test_certificate_line_is_linear() -> None:
    def probe(text: str) -> object:
        return host.parse_probe("posttls-finger: " + text + "\n")

    assert grows_linearly(probe, lambda n: ("subject_CN=" * n)[:n], 16384)


# -- one long line of `postqueue -j` while show searches the listing for an ID ------------


def test_listing_search_joins_a_long_line_once() -> None:
    def search(chunks: list[bytes]) -> object:
        finder = postcat.ListingSearch("ABCDEF123", PostqueueJsonParser())
        for chunk in chunks:
            finder.feed(chunk)
        return finder.close()

    def line(n: int) -> list[bytes]:
        data = b'{"queue_name": "deferred", "x": "' + b"a" * (n * 1024) + b'"}\n'
        return [data[i : i + 16384] for i in range(0, len(data), 16384)]

    # 0.5 and 2 MiB in 16 KiB chunks: both sizes stay in the CPU's caches, so the ratio is
    # about 4 even on a loaded machine (30-50 when every chunk copies the line so far). With
    # 2 and 8 MiB in 64 KiB chunks the larger line fell out of a contended cache: about 10.
    assert grows_linearly(search, line, 512)


# -- the other parsers: no pattern there backtracks, and these sizes show it ---------------

PIECES = ["a", "a.", "1.", "a@", "@", "a[", ":", "a:", " ", "a ", "(", "-", "/", "=", '\\"']
NOW = 1.8e9
CLOCK = maillog.LogClock(NOW)


def ignore_errors(parse: Callable[[str], object]) -> Callable[[str], object]:
    def run(text: str) -> object:
        try:
            return parse(text)
        except MailqbotError:
            return None

    return run


PARSERS: dict[str, Callable[[str], object]] = {
    "postqueue -p message": lambda s: list(
        postfix.parse_postqueue_list(
            "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
            f"ABCDEF1234*    123 Mon Nov 28 11:09:51  {s}\n   ({s})\n  {s}\n",
            now=NOW,
        )
    ),
    "postqueue -p header": lambda s: list(postfix.parse_postqueue_list(s + "\n", now=NOW)),
    "postqueue -j": lambda s: PostqueueJsonParser().feed(
        b'{"queue_name":"deferred","queue_id":"ABCDEF123","arrival_time":1,"message_size":1,'
        b'"sender":"'
        + s.encode()
        + b'","recipients":[{"address":"a@b","delay_reason":"'
        + s.encode()
        + b'"}]}\n'
    ),
    "postcat": lambda s: postcat.parse_postcat(
        f"*** ENVELOPE RECORDS deferred/A/ABCDEF123 ***\nsender: {s}\n{s}: x\n"
    ),
    "postcat content": lambda s: postcat.parse_content(f"{s}: x\n {s}\n\n{s}\n"),
    "postcat address": lambda s: postcat.unquote_address('"' + s),
    "maillog line": lambda s: maillog.parse_line(
        f"Nov 28 11:09:51 mail postfix/smtp[1]: 9DB1516A006: to=<{s}>, relay={s}, "
        f"status=deferred ({s}",
        CLOCK,
    ),
    "postsuper": lambda s: postsuper.parse_report("purge", f"postsuper: {s}\n{s}\n"),
    "postconf settings": lambda s: spool.parse_settings(f"{s}\n{s} = {s}\n"),
    "diag settings": lambda s: host.parse_settings(f"{s} = {s}\n{s}\n"),
    "diag resolv.conf": lambda s: host.parse_resolv_confs(f"==> {s}\nnameserver {s}\n"),
    "posttls-finger": lambda s: host.parse_probe(
        f"posttls-finger: {s}\nposttls-finger: < 220 {s}\nposttls-finger: Failed to "
        f"establish session to {s} via {s}: {s}\nposttls-finger: {s} TLS connection "
        f"established to {s}\n"
    ),
    "filter": lambda s: QueueFilter.parse([f"reason={s}", s, f"domain={s}", f"sender={s}"]),
}


@pytest.mark.parametrize("name", PARSERS)
def test_parser_is_linear(name: str) -> None:
    parse = ignore_errors(PARSERS[name])
    for piece in PIECES:
        assert grows_linearly(parse, lambda n, p=piece: (p * n)[:n], 4096), piece
