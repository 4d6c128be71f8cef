"""Delay reasons come from remote servers: their analysis is linear and bounded, and gives
the results the former (quadratic) patterns gave."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.postfix import reasons
from bot.postfix.reasons import MAX_EXAMINED, MAX_WORD, ReasonClass, analyse, classify
from helpers.growth import best_time, grows_linearly

# The former patterns: the oracle. They scan to the end of a run from every position in it.
OLD_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>|[^\s<>()\[\]{};:,\"'`@]+@[A-Za-z0-9._-]+[A-Za-z0-9]")
OLD_HOST = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9.-]*\[[^\]\s]*\]|(?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z]"
)
OLD_DNS = re.compile(r"name service error.*try again", re.IGNORECASE)
OLD_TIMEOUT = re.compile(r"conversation with .* timed out", re.IGNORECASE)
SUSPENDED = "delivery temporarily suspended: "


def old_strip_prefix(text: str) -> str:
    text = text.strip()
    while text.startswith(SUSPENDED):
        text = text[len(SUSPENDED) :].lstrip()
    return text


def clear_caches() -> None:
    for cached in vars(reasons).values():
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


# Words made of the characters the patterns care about, and of whole pieces of reasons.
PIECES = ["a", "Z", "1", ".", "-", "_", "[", "]", "@", "<", ">", ":", ";", "!", "x.y", ".."]
PIECES += ["mx.example.com", "[192.0.2.1]", "a@b.c", "<u@d.e>", "-.", ".-", "4.7.1", "ab"]
words = st.text(alphabet="a1Z.-[]@<>:;!_", max_size=40) | st.lists(
    st.sampled_from(PIECES), max_size=12
).map("".join)
TEXT_PIECES = ["conversation with ", " timed out", "name service error", "try again", "x", " "]
TEXT_PIECES += ["TIMED OUT", "Try Again", "İ", "\u212a", SUSPENDED, "\u00a0", "\n", "\t"]
texts = st.lists(st.sampled_from(TEXT_PIECES), max_size=14).map("".join)


@given(words)
@settings(max_examples=3000)
def test_host_folding_is_the_former_one(word: str) -> None:
    assert reasons._host_word(word) == OLD_HOST.sub("<host>", word)


@given(words)
@settings(max_examples=3000)
def test_address_folding_is_the_former_one(word: str) -> None:
    assert reasons._ADDRESS.sub(reasons._address, word) == OLD_ADDRESS.sub("<addr>", word)


@given(texts)
@settings(max_examples=2000)
def test_rules_and_prefix_are_the_former_ones(text: str) -> None:
    for first, then, old in [
        ("name service error", "try again", OLD_DNS),
        ("conversation with ", " timed out", OLD_TIMEOUT),
    ]:
        new = re.compile(reasons._then(first, then), re.IGNORECASE)
        assert bool(new.search(text)) == bool(old.search(text))
    assert reasons._strip_prefix(text) == old_strip_prefix(text)


# Inputs on which the former patterns took time quadratic in their length.
HOSTILE_WORDS = ["a.", "1.", "a[", "a.b[", "-.", "a..", "9.z"]


def pumped(piece: str, suffix: str = "") -> Callable[[int], str]:
    return lambda n: (piece * n)[:n] + suffix


@pytest.mark.parametrize("piece", HOSTILE_WORDS)
def test_host_folding_is_linear(piece: str) -> None:
    assert grows_linearly(reasons._host_word, pumped(piece), 4096)


@pytest.mark.parametrize(("piece", "suffix"), [("a", "@"), ("a", "@."), ("<", "@"), ("<@", "")])
def test_address_folding_is_linear(piece: str, suffix: str) -> None:
    def fold(word: str) -> str:
        return reasons._ADDRESS.sub(reasons._address, word)

    assert grows_linearly(fold, pumped(piece, suffix), 4096)


@pytest.mark.parametrize(
    ("head", "piece"),
    [
        ("timed out ", "conversation with "),
        ("try again ", "name service error "),
        ("x ", "connect to "),
        ("x ", "dynamic dial-up "),
        ("x ", "AUP#OFR"),
        ("x ", "[TS"),
        ("x ", "does not resolve to "),
    ],
)
def test_classifying_is_linear(head: str, piece: str) -> None:
    def make(n: int) -> list[str]:
        return (head + piece * (n // len(piece)))[:n].split()

    assert grows_linearly(reasons._classify_words, make, 8192)


def test_prefix_stripping_is_linear() -> None:
    assert grows_linearly(reasons._strip_prefix, pumped(SUSPENDED, "x"), 16384)


def test_only_the_start_of_a_reason_and_of_a_word_is_examined() -> None:
    head = "host mx.example.com[192.0.2.1] said: 450 4.7.1 Greylisted, try later "
    assert classify(head + "x" * 100_000 + " Mailbox full") is ReasonClass.greylisted
    assert classify("x " * MAX_EXAMINED + "Greylisted") is ReasonClass.other
    assert classify("x" * MAX_WORD + "Greylisted") is ReasonClass.other
    assert classify("x" * (MAX_WORD - 10) + "Greylisted") is ReasonClass.greylisted

    def long_reason(n: int) -> str:
        clear_caches()
        return head + "a." * n

    assert best_time(analyse, long_reason(1_000_000)) < 10 * best_time(analyse, long_reason(4096))


def hostile_reason(n: int, piece: str) -> str:
    """A real reply with a 2 KB word of its own in it."""
    tag = "".join(string.ascii_lowercase[int(d)] for d in f"{n:06d}")
    word = (tag + piece * 2048)[:2048]
    return f"host mx.example.com[192.0.2.1] said: 450 4.7.1 {word} (in reply to RCPT TO command)"


def ordinary_reason(n: int) -> str:
    """As long, in ordinary words: linear work for the former patterns too."""
    tag = "".join(string.ascii_lowercase[int(d)] for d in f"{n:06d}")
    filler = " ".join(["please", "come", "back", "later", tag] * 70)[:2048]
    return f"host mx.example.com[192.0.2.1] said: 450 4.7.1 {filler} (in reply to RCPT TO command)"


def test_a_thousand_hostile_words_cost_no_more_than_ordinary_text() -> None:
    """1,000 reasons, each with its own 2 KB word: the former patterns took 5-25 ms for each
    (20 s or so in all); now they cost no more than ordinary reasons of the same length."""
    pieces = ["a.", "1.", "a[", "a.b[", "-.", "a@", "1.1.1.1.", "<a@"]
    hostile = [hostile_reason(n, pieces[n % len(pieces)]) for n in range(1000)]
    ordinary = [ordinary_reason(n) for n in range(1000)]

    def analyse_all(batch: list[str]) -> None:
        clear_caches()
        for reason in batch:
            analyse(reason)

    for _attempt in range(3):
        spent = best_time(analyse_all, hostile, repeat=3)
        if spent < 2.0 and spent < 3 * best_time(analyse_all, ordinary, repeat=3):
            return
    pytest.fail(f"1,000 hostile reasons took {spent:.3f} s")
