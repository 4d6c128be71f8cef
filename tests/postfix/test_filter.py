"""The queue filter: parsing (errors say what to do), matching against a plain recount on the
lab's captured queue, canonical words that parse back to the same filter, and fuzzing."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import UsageError
from bot.postfix.filter import KEYS, MAX_WORD_LENGTH, QueueFilter, format_duration, parse_duration
from bot.postfix.models import QUEUE_NAMES, QueueMessage, Recipient
from bot.postfix.postfix import PostqueueJsonParser
from bot.postfix.reasons import ReasonClass, classify
from helpers.mta_samples import LAB_JSON, NOW, messages, sample_messages, synthetic_messages

F = QueueFilter.parse


def lab_queue() -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    return parser.feed(LAB_JSON.read_bytes()) + parser.close()


LAB = lab_queue()
LAB_NOW = max(m.arrival_time for m in LAB) + 3600


def message(
    *rcpts: tuple[str, str],
    sender: str = "a@x.test",
    queue: str = "deferred",
    arrival: int = NOW - 60,
    queue_id: str = "ABCDEF123",
) -> QueueMessage:
    recipients = tuple(Recipient(a, r) for a, r in rcpts)
    return QueueMessage(queue, queue_id, arrival, 1000, sender, recipients)


def selected(words: list[str], queue: list[QueueMessage], now: float = LAB_NOW) -> list[str]:
    flt = F(words)
    return [m.queue_id for m in queue if flt.matches(m, now)]


# -- the recount: each key computed the obvious way --------------------------------------------


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def class_of(m: QueueMessage, r: Recipient) -> ReasonClass | None:
    if not r.delay_reason:
        return ReasonClass.other if m.queue_name == "deferred" else None
    return classify(r.delay_reason)


def test_lab_capture_is_varied_enough() -> None:
    assert len(LAB) == 40
    assert len({class_of(m, r) for m in LAB for r in m.recipients}) >= 8
    assert any(m.sender == "MAILER-DAEMON" for m in LAB)


@pytest.mark.parametrize(
    "domain", ["busy.test", "BUSY.test.", "@busy.test", "test", "mx.busy.test"]
)
def test_domain_is_the_recipient_domain_or_a_parent(domain: str) -> None:
    wanted = domain.strip("@.").lower()
    expected = [
        m.queue_id
        for m in LAB
        if any(
            domain_of(r.address) in (wanted,) or domain_of(r.address).endswith("." + wanted)
            for r in m.recipients
        )
    ]
    assert selected([f"domain={domain}"], LAB) == expected
    if wanted != "mx.busy.test":
        assert expected


def test_domain_does_not_match_a_mere_suffix() -> None:
    m = message(("a@notbusy.test", "x"))
    assert not F(["domain=busy.test"]).matches(m, NOW)
    assert F(["domain=notbusy.test"]).matches(m, NOW)


def test_unicode_and_ascii_forms_of_a_domain_are_the_same() -> None:
    ascii_rcpt = message(("a@xn--mnchen-3ya.example", "x"))
    unicode_rcpt = message(("a@MÜNCHEN.example", "x"))
    for value in ("münchen.example", "xn--mnchen-3ya.example", "MÜNCHEN.EXAMPLE"):
        flt = F([f"domain={value}"])
        assert flt.domains == ("xn--mnchen-3ya.example",)
        assert flt.matches(ascii_rcpt, NOW)
        assert flt.matches(unicode_rcpt, NOW)


@pytest.mark.parametrize("cls", list(ReasonClass))
def test_reason_class_matches_a_recount(cls: ReasonClass) -> None:
    expected = [m.queue_id for m in LAB if any(class_of(m, r) is cls for r in m.recipients)]
    assert selected([f"reason={cls.value}"], LAB) == expected
    assert selected([f"reason={cls.value.upper().replace('_', '-')}"], LAB) == expected


def test_every_lab_message_has_some_class() -> None:
    words = [f"reason={c.value}" for c in ReasonClass]
    assert selected(words, LAB) == [m.queue_id for m in LAB]


def test_reason_text_is_a_case_insensitive_substring() -> None:
    expected = [
        m.queue_id for m in LAB if any("too many" in r.delay_reason.lower() for r in m.recipients)
    ]
    assert expected
    assert selected(["reason=TOO MANY"], LAB) == expected
    assert selected(shlex.split("'reason=Too many'"), LAB) == expected


def test_missing_reason_is_other_only_in_the_deferred_queue() -> None:
    deferred = message(("a@x.test", ""))
    active = message(("a@x.test", ""), queue="active")
    assert F(["reason=other"]).matches(deferred, NOW)
    assert not F(["reason=other"]).matches(active, NOW)


def test_recipient_keys_must_hold_for_the_same_recipient() -> None:
    grey = "host mx.a.test[192.0.2.1] said: 450 4.7.1 Greylisted"
    refused = "connect to mx.b.test[192.0.2.2]:25: Connection refused"
    m = message(("u@a.test", grey), ("v@b.test", refused), ("w@b.test", grey))
    assert not F(["domain=a.test", "reason=connection_refused"]).matches(m, NOW)
    both = F(["domain=b.test", "reason=greylisted"])
    assert both.matches(m, NOW)
    assert both.matching_recipients(m, NOW) == (m.recipients[2],)
    assert F([]).matching_recipients(m, NOW) == m.recipients
    assert F(["domain=c.test"]).matching_recipients(m, NOW) is None


def test_a_message_without_recipients_matches_message_keys_only() -> None:
    bare = message()
    assert F(["queue=deferred"]).matching_recipients(bare, NOW) == ()
    assert not F(["domain=x.test"]).matches(bare, NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<>", {"MAILER-DAEMON"}),
        ("MAILER-DAEMON", {"MAILER-DAEMON"}),
        ("mailer-daemon", {"MAILER-DAEMON"}),
        ("News@SHOP.test", {"news@shop.test"}),
        ("@partner.test", {"alice@partner.test", "renee.dubois@partner.test"}),
        ("@test", {m.sender for m in LAB if m.sender != "MAILER-DAEMON"}),
        ('"<!channel>"@evil.test', {'"<!channel>"@evil.test'}),
        ("nobody@shop.test", set()),
    ],
)
def test_sender(value: str, expected: set[str]) -> None:
    flt = F([f"sender={value}"])
    assert {m.sender for m in LAB if flt.matches(m, LAB_NOW)} == expected


def test_null_sender_is_empty_or_mailer_daemon() -> None:
    flt = F(["sender=<>"])
    assert flt.matches(message(sender=""), NOW)
    assert flt.matches(message(sender="MAILER-DAEMON"), NOW)
    assert not flt.matches(message(sender="mailer-daemon@x.test"), NOW)


def test_queue_and_ids() -> None:
    queue = sample_messages()
    for name in QUEUE_NAMES:
        assert selected([f"queue={name}"], queue, NOW) == [
            m.queue_id for m in queue if m.queue_name == name
        ]
    ids = [LAB[3].queue_id, LAB[7].queue_id]
    assert selected([f"id={ids[1]},{ids[0]}"], LAB) == ids
    assert selected([f"id={ids[0]}", f"id={ids[1]}"], LAB) == ids
    many = [m.queue_id for m in synthetic_messages(300)]
    assert F([f"id={i}" for i in many]).ids == tuple(many)
    words = F([f"id={i}" for i in many]).words()  # canonical words stay under the limit
    assert len(words) > 1
    assert all(len(w) <= MAX_WORD_LENGTH for w in words)
    assert F(words).ids == tuple(many)
    long_id = next(m.queue_id for m in queue if "z" in m.queue_id)
    assert selected([f"id={long_id}"], queue, NOW) == [long_id]


def test_ages_are_measured_against_the_injected_now() -> None:
    m = message(arrival=NOW - 7200)
    assert F(["older=2h"]).matches(m, NOW)
    assert not F(["older=2h"]).matches(m, NOW - 1)
    assert F(["newer=2h"]).matches(m, NOW - 1)
    assert not F(["newer=2h"]).matches(m, NOW)
    future = message(arrival=NOW + 600)  # clock skew: age 0
    assert F(["newer=1m"]).matches(future, NOW)
    assert not F(["older=1s"]).matches(future, NOW)


def test_ages_on_synthetic_queue_match_a_recount() -> None:
    queue = list(synthetic_messages(2000, seed=4))
    got = selected(["older=1d", "newer=2d"], queue, NOW)
    assert got == [m.queue_id for m in queue if 86400 <= NOW - m.arrival_time < 172800]
    assert 0 < len(got) < len(queue)


def test_keys_combine_with_and_values_with_or() -> None:
    words = [
        "domain=busy.test,full.test",
        "sender=<>",
        "sender=@shop.test",
        "reason=greylisted",
        "reason=rate_limited",
        "reason=mailbox_full",
        "queue=deferred",
    ]
    expected = [
        m.queue_id
        for m in LAB
        if (m.sender == "MAILER-DAEMON" or m.sender.endswith("@shop.test"))
        and any(
            domain_of(r.address) in ("busy.test", "full.test")
            and class_of(m, r)
            in (ReasonClass.greylisted, ReasonClass.rate_limited, ReasonClass.mailbox_full)
            for r in m.recipients
        )
    ]
    assert expected
    assert selected(words, LAB) == expected


def test_empty_filter_selects_everything() -> None:
    assert F([]).is_empty
    assert selected([], LAB) == [m.queue_id for m in LAB]
    assert F([]).describe() == "all messages"


# -- parsing and errors ---------------------------------------------------------------------


def test_parsed_values_are_normalised() -> None:
    flt = F(
        [
            "DOMAIN=@Example.COM.",
            "Sender=Bob@Example.com",
            "reason=Mailbox-Full",
            "reason=Too many",
            "older=90m",
            "newer=1w",
            "queue=HOLD,deferred",
            "id=9EF7716A00B",
        ]
    )
    assert flt == QueueFilter(
        domains=("example.com",),
        senders=("bob@example.com",),
        reason_classes=(ReasonClass.mailbox_full,),
        reason_texts=("Too many",),
        older=5400,
        newer=7 * 86400,
        queues=("hold", "deferred"),
        ids=("9EF7716A00B",),
    )
    assert F(["domain=a.test", "domain=a.test,A.test"]).domains == ("a.test",)


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["greylisted"], "Did you mean `reason=greylisted`?"),
        (["busy.test"], "Did you mean `domain=busy.test`?"),
        (["9EF7716A00B"], "Did you mean `id=9EF7716A00B`?"),
        (["2d"], "Did you mean `older=2d`?"),
        (["hello"], "filters are `key=value` words"),
        (["domian=x.test"], "Did you mean `domain=`?"),
        (["from=a@b.test"], "Did you mean `sender=`?"),
        (["colour=red"], "Filters: `domain=`, `sender=`, `reason=`, `older=`, `newer=`"),
        (["domain="], "`domain=` needs a value"),
        (["domain=exa mple.test"], "is not a valid domain name"),
        (["domain=a..test"], "is not a valid domain name"),
        (["domain=-a.test"], "is not a valid domain name"),
        (["domain=" + "a" * 300 + ".test"], "is not a valid domain name"),
        (["domain=a.test,"], "an empty value between commas"),
        (["sender=bob"], "give an address, `@domain` or `<>`"),
        (["sender=bob@"], "give an address"),
        (["sender=bob@bad_domain.test"], "give an address"),
        (["older=5"], "with a unit: 90s, 30m, 1h30m, 2d or 1w"),
        (["older=0m"], "above zero"),
        (["older=99999w"], "above zero"),
        (["newer=soon"], "Example: `newer=30m`"),
        (["older=1d", "older=2d"], "give `older=` only once"),
        (["older=2d", "newer=1h"], "Did you mean `older=1h newer=2d`?"),
        (["older=1h", "newer=1h"], "selects nothing"),
        (["queue=bogus"], "queues: maildrop, incoming, active, deferred, hold, corrupt"),
        (["id=9ef7716a00b"], "did you mean `9EF7716A00B`?"),
        (["id=ALL"], "is not a Postfix queue ID"),
        (["id=ABC123;reboot"], "is not a Postfix queue ID"),
        (["reason=" + "x" * 600], "a value is longer than 512 characters"),
        (["id=" + ",".join(["9EF7716A00B"] * 200)], "longer than 2,048 characters: split it"),
        (["x" * 100_000], "a filter word is longer than 2,048 characters"),
    ],
)
def test_bad_words_say_what_is_wrong_and_what_to_write(words: list[str], says: str) -> None:
    with pytest.raises(UsageError) as caught:
        F(words)
    text = caught.value.user_message
    assert says in text
    assert any(hint in text for hint in ("Example", "Did you mean", "Filters:"))


def test_echoed_input_cannot_close_a_code_span() -> None:
    with pytest.raises(UsageError) as caught:
        F(["domain=`<!channel>`" + "x" * 200])
    text = caught.value.user_message
    assert "`<!channel>`" not in text
    assert len(text) < 300


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("2h", 7200),
        ("2d", 172800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("45s", 45),
        ("1D", 86400),
        ("5", None),
        ("0s", None),
        ("m", None),
        ("1.5h", None),
    ],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds
    if seconds is not None:
        assert parse_duration(format_duration(seconds)) == seconds


def test_describe_reads_like_a_sentence() -> None:
    flt = F(
        [
            "domain=münchen.example",
            "sender=<>",
            "reason=greylisted",
            "reason=try again",
            "older=2d",
            "queue=deferred",
        ]
    )
    assert flt.describe() == (
        "recipient domain münchen.example (xn--mnchen-3ya.example) (or a subdomain), "
        'sender <> (MAILER-DAEMON), reason greylisted or containing "try again", '
        "older than 2d, queue deferred"
    )
    many = F(["id=" + ",".join(m.queue_id for m in LAB[:12])])
    assert many.describe() == "one of 12 queue IDs"
    assert "sender in shop.test (or a subdomain)" in F(["sender=@shop.test"]).describe()


def test_words_survive_chat_formatting() -> None:
    """The canonical words hold no ``<``/``>``: they go into button values unescaped."""
    flt = F(["sender=<>", "domain=münchen.example"])
    assert flt.words() == ["domain=xn--mnchen-3ya.example", "sender=MAILER-DAEMON"]
    assert F(flt.words()) == flt


# -- properties -----------------------------------------------------------------------------

_domains = st.sampled_from(["a.test", "b.example", "münchen.example", "x.y.z.test", "test"])
_valid_words = st.one_of(
    st.builds(lambda ds: "domain=" + ",".join(ds), st.lists(_domains, min_size=1, max_size=3)),
    st.sampled_from(
        [
            "sender=<>",
            "sender=MAILER-DAEMON",
            "sender=@shop.test",
            'sender="<!channel>"@evil.test',
            "sender=Bob@Example.com",
        ]
    ),
    st.sampled_from([f"reason={c.value}" for c in ReasonClass]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
    .filter(lambda t: t.strip() != "")
    .map(lambda t: f"reason={t}"),
    st.sampled_from([f"queue={q}" for q in QUEUE_NAMES]),
    st.sampled_from(["id=9EF7716A00B", "id=4Y2FQ3Lkb1z9Kq,ABCDEF12"]),
)


@settings(max_examples=300)
@given(st.lists(_valid_words, max_size=6), st.sampled_from([None, 60, 3600, 86400]))
def test_canonical_words_parse_back_to_the_same_filter(words: list[str], older: int | None) -> None:
    if older is not None:
        words = [*words, f"older={older}s"]
    flt = F(words)
    assert F(flt.words()) == flt
    assert F(shlex.split(str(flt))) == flt
    assert isinstance(flt.describe(), str)


_key_words = st.builds(
    lambda k, v: f"{k}={v}", st.sampled_from([*KEYS, "DOMAIN", "offset", ""]), st.text(max_size=40)
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=40), _key_words), max_size=8))
def test_parse_raises_nothing_but_usage_error(words: list[str]) -> None:
    try:
        flt = F(words)
    except UsageError as exc:
        error: UsageError | None = exc
    else:
        error = None
        assert F(flt.words()) == flt
    assert error is None or error.user_message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.sampled_from([60, 3600, 86400, 30 * 86400]))
def test_older_and_newer_split_the_queue(m: QueueMessage, seconds: int) -> None:
    older = F([f"older={seconds}s"]).matches(m, NOW)
    newer = F([f"newer={seconds}s"]).matches(m, NOW)
    assert older != newer


_filters = st.lists(_valid_words, max_size=4).map(F)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages, _filters)
def test_matching_hostile_messages_never_crashes(m: QueueMessage, flt: QueueFilter) -> None:
    selected_rcpts = flt.matching_recipients(m, NOW)
    assert flt.matches(m, NOW) == (selected_rcpts is not None)
    if selected_rcpts is not None:
        assert set(selected_rcpts) <= set(m.recipients)
