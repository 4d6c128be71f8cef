"""The mail log parser, line reader, analyser and command templates.

Real lines come from ``tests/data/postfix.log.lab`` (the lab's own ``maillog_file``); the
other forms (ISO stamps, expiry, bounces, ``orig_to``) are lab lines rewritten into the
formats Postfix, rsyslog and journald write.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError, UsageError
from bot.postfix import logsource, maillog, postfix, tools
from bot.postfix.maillog import Delivery, LineReader, LogAnalyser, LogClock, parse_line
from bot.postfix.models import is_queue_id
from bot.postfix.reasons import ReasonClass
from helpers.mta_samples import DATA

LAB_LOG = DATA / "postfix.log.lab"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
LAB_LINES = LAB_LOG.read_text().splitlines()
STATUS_LINES = [line for line in LAB_LINES if " status=" in line]
RELAY_LINE = next(line for line in STATUS_LINES if "postfix/relay/smtp" in line)
QUOTED_LINE = next(line for line in STATUS_LINES if 'to=<"' in line)
SENT_LINE = next(line for line in STATUS_LINES if "status=sent" in line)


def clock(offset: int = 0, now: float = NOW) -> LogClock:
    return LogClock(now, offset)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- parse_line on real lines -----------------------------------------------------------------


def test_every_status_line_of_the_lab_capture_parses() -> None:
    parsed = [parse_line(line, clock()) for line in LAB_LINES]
    deliveries = [d for d in parsed if d is not None]
    assert len(deliveries) == len(STATUS_LINES) == 70
    assert {d.status for d in deliveries} == {"deferred", "sent"}
    assert all(is_queue_id(d.queue_id) for d in deliveries)


def test_fields_of_a_relay_line() -> None:
    d = parse_line(RELAY_LINE, clock())
    assert d == Delivery(
        when=epoch("2026-11-28T11:09:51+00:00"),
        queue_id="9B04016A005",
        status="deferred",
        recipient="bob0@authfail.test",
        relay="mx.authfail.test[127.0.0.8]:25",
        delays=(0.01, 0.09, 0.01, 0.0),
        dsn="4.7.8",
        reason="SASL authentication failed; server mx.authfail.test[127.0.0.8] said: 535 5.7.8 "
        "Error: authentication failed: authentication failure",
        program="postfix/relay/smtp",
    )


def test_quoted_hostile_recipient_is_kept_whole() -> None:
    d = parse_line(QUOTED_LINE, clock())
    assert d is not None
    assert d.recipient.startswith('"<!everyone>"@')


def test_hostile_address_cannot_shift_the_fields_after_it() -> None:
    fake = ', relay=evil, delay=1, delays=1/1/1/1, dsn=2.0.0, status=sent (ok)"'
    line = SENT_LINE.replace("to=<", f'to=<"x>{fake}@evil.test>, orig_to=<"a>b"@c', 1)
    line = line.replace(">, relay=mx.sink", ">, relay=mx.sink", 1)
    d = parse_line(line, clock())
    assert d is not None
    assert d.status == "sent"
    assert d.relay.startswith("mx.sink.test")
    assert d.recipient.startswith('"x>, relay=evil')


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Nov 28 10:59:04 mail postfix/master[11930]: daemon started -- version 3.7.11",
        "Nov 28 11:09:51 mail postfix/qmgr[29136]: 9DB1516A006: removed",
        SENT_LINE.replace("9", "a", 3),  # lower-case hex: not a short queue ID
        SENT_LINE.replace("Nov 28", "Nov 31"),
        SENT_LINE.replace("Nov", "Now"),
        SENT_LINE.replace("11:09", "25:09"),
        SENT_LINE.replace("status=sent (", "status=sent ("[:-2]),
        SENT_LINE[:-1],  # reason without its closing parenthesis
    ],
)
def test_other_lines_are_not_deliveries(line: str) -> None:
    assert parse_line(line, clock()) is None


def test_expired_and_bounced_and_orig_to() -> None:
    stamp = "Nov 28 11:30:00 mail"
    expired = (
        f"{stamp} postfix/qmgr[7]: 9DB1516A006: from=<a@b.test>, status=expired, returned to sender"
    )
    bounced = (
        f"{stamp} postfix/smtp[8]: 9DB1516A006: to=<x@y.test>, orig_to=<alias@y.test>, "
        "relay=mx.y.test[192.0.2.1]:25, delay=432000, delays=0.1/432000/0.2/0, dsn=5.1.1, "
        "status=bounced (host mx.y.test[192.0.2.1] said: 550 5.1.1 no such user (in reply to "
        "RCPT TO command))"
    )
    e, b = parse_line(expired, clock()), parse_line(bounced, clock())
    assert e is not None
    assert b is not None
    assert (e.status, e.recipient, e.relay, e.delays, e.reason) == (
        "expired", "", "", None, "returned to sender",
    )  # fmt: skip
    assert (b.status, b.recipient, b.delays, b.dsn) == (
        "bounced",
        "x@y.test",
        (0.1, 432000, 0.2, 0),
        "5.1.1",
    )
    assert b.reason.endswith("(in reply to RCPT TO command)")


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "offset", "expected"),
    [
        ("2026-11-28T11:09:51.123456+00:00", 0, "2026-11-28T11:09:51.123456+00:00"),  # rsyslog
        ("2026-11-28T11:09:51.123456+0000", 3600, "2026-11-28T11:09:51.123456+00:00"),  # journal
        ("2026-11-28T12:09:51+01:00", 0, "2026-11-28T11:09:51+00:00"),
        ("2026-11-28T11:09:51Z", 0, "2026-11-28T11:09:51+00:00"),
        ("2026-11-28T12:09:51", 3600, "2026-11-28T11:09:51+00:00"),  # no zone: the host's
        ("Nov 28 12:09:51", 3600, "2026-11-28T11:09:51+00:00"),
        ("Nov 28 06:09:51", -5 * 3600, "2026-11-28T11:09:51+00:00"),
    ],
)
def test_both_timestamp_forms(stamp: str, offset: int, expected: str) -> None:
    line = stamp + RELAY_LINE[15:]
    d = parse_line(line, clock(offset))
    assert d is not None
    assert d.when == pytest.approx(epoch(expected))
    assert maillog.line_time(line, clock(offset)) == pytest.approx(epoch(expected))


@pytest.mark.parametrize(
    ("now", "stamp", "expected"),
    [
        ("2027-01-01T00:30:00+00:00", "Dec 31 23:59:59", "2026-12-31T23:59:59+00:00"),
        ("2027-01-01T00:30:00+00:00", "Jan  1 00:10:00", "2027-01-01T00:10:00+00:00"),
        ("2027-03-01T10:00:00+00:00", "Feb 29 10:00:00", "2024-02-29T10:00:00+00:00"),
        # A host clock slightly ahead of the bot's: up to a day in the future is this year.
        ("2026-11-28T12:00:00+00:00", "Nov 28 18:00:00", "2026-11-28T18:00:00+00:00"),
    ],
)
def test_syslog_year_is_the_latest_not_after_now(now: str, stamp: str, expected: str) -> None:
    assert maillog.line_time(stamp + " mail x", clock(0, epoch(now))) == epoch(expected)


def test_the_day_cache_holds_real_months_only() -> None:
    c = clock()
    for word in ("Abc", "Xyz", "Nox", "Zzz"):
        for day in range(1, 32):
            assert c.epoch(f"{word} {day:2d} 11:00:00") is None
    assert c._days == {}
    c.epoch("Nov 31 11:00:00")
    assert c._days == {"Nov 31": None}


# -- the line reader --------------------------------------------------------------------------


def test_chunk_boundaries_crlf_and_bad_bytes_do_not_matter() -> None:
    raw = LAB_LOG.read_bytes().replace(b"\n", b"\r\n", 5) + b"\xff\xfe 9DB1: garbage, status= \n"
    whole = LineReader(clock())
    expected = whole.feed(raw) + whole.close()
    for size in (1, 7, 4096):
        reader = LineReader(clock())
        got = [d for i in range(0, len(raw), size) for d in reader.feed(raw[i : i + size])]
        assert got + reader.close() == expected
        assert (reader.lines, reader.malformed) == (whole.lines, whole.malformed) == (217, 1)
    assert len(expected) == 70


def test_a_last_line_without_newline_still_counts() -> None:
    reader = LineReader(clock())
    assert reader.feed(SENT_LINE.encode()) == []
    assert [d.status for d in reader.close()] == ["sent"]


def test_overlong_line_is_skipped_not_buffered() -> None:
    reader = LineReader(clock())
    blob = b"x status=" + b"y" * (maillog.MAX_LINE_BYTES + 10)
    for i in range(0, len(blob), 65536):
        reader.feed(blob[i : i + 65536])
        assert len(reader._rest) <= maillog.MAX_LINE_BYTES
    got = reader.feed(b"tail of the long line\n" + SENT_LINE.encode() + b"\n")
    assert [d.status for d in got] == ["sent"]
    assert reader.malformed == 1


# -- fuzz -------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=60)


@given(st.sampled_from(STATUS_LINES), st.integers(0, 400), _TEXT, st.integers(0, 40))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_lab_lines(line: str, at: int, insert: str, cut: int) -> None:
    at = min(at, len(line))
    mutated = line[:at] + insert + line[at + cut :]
    d = parse_line(mutated, clock())
    if d is not None:
        assert is_queue_id(d.queue_id)
        assert re.fullmatch(r"[A-Za-z][A-Za-z-]{0,39}", d.status)
        assert d.delays is None or all(v >= 0 for v in d.delays)


@given(st.text(max_size=300))
@settings(max_examples=1000, deadline=None)
def test_fuzz_arbitrary_text(text: str) -> None:
    d = parse_line(text, clock())
    assert d is None or is_queue_id(d.queue_id)
    maillog.line_time(text, clock())


@given(st.lists(st.binary(max_size=200), max_size=10))
@settings(max_examples=500, deadline=None)
def test_fuzz_reader_on_arbitrary_bytes(chunks: list[bytes]) -> None:
    reader = LineReader(clock())
    out = [d for chunk in chunks for d in reader.feed(chunk)] + reader.close()
    assert all(is_queue_id(d.queue_id) for d in out)


# -- the analyser -----------------------------------------------------------------------------


def lab_analysis(start: float = 0) -> maillog.LogAnalysis:
    analyser = LogAnalyser(start)
    reader = LineReader(clock())
    for d in reader.feed(LAB_LOG.read_bytes()) + reader.close():
        analyser.add(d)
    return analyser.build()


def test_lab_counts_match_a_plain_recount() -> None:
    a = lab_analysis()
    statuses = dict(a.statuses)
    assert statuses == {"sent": 3, "deferred": 67, "bounced": 0, "expired": 0}
    assert a.untried == sum(
        "status=deferred (delivery temporarily suspended" in x for x in LAB_LINES
    )
    deferred_ids = {x.split()[5].rstrip(":") for x in LAB_LINES if "status=deferred" in x}
    assert a.deferred_ids == len(deferred_ids)
    assert a.id_floor == 0
    assert {c for c, _ in a.deferred_by_class} >= {
        ReasonClass.greylisted, ReasonClass.connection_refused, ReasonClass.connection_timeout,
        ReasonClass.rate_limited, ReasonClass.tls_failure, ReasonClass.auth_failure,
        ReasonClass.mailbox_full, ReasonClass.dns_tempfail, ReasonClass.other,
    }  # fmt: skip
    assert sum(n for _, n in a.deferred_by_class) == 67
    assert a.repeated == []  # every deferral of a message came within one run


def test_delays_breakdown_matches_the_lines() -> None:
    a = lab_analysis()
    sent = [
        d for d in map(lambda x: parse_line(x, clock()), STATUS_LINES) if d and d.status == "sent"
    ]
    count, parts = a.delays["sent"]
    assert count == len(sent) == 3
    for i, part in enumerate(parts):
        values = [d.delays[i] for d in sent if d.delays]
        assert part.mean == pytest.approx(sum(values) / len(values))
        assert part.max == max(values)
        assert part.p95 >= max(values)


def test_window_start_skips_earlier_lines() -> None:
    a = lab_analysis(start=epoch("2026-11-28T11:09:55+00:00"))
    kept = [x for x in STATUS_LINES if x[7:15] >= "11:09:55"]
    assert a.lines == len(kept)
    assert a.first_seen is not None
    assert a.first_seen >= epoch("2026-11-28T11:09:55+00:00")


def delivery(qid: str, when: float, status: str = "deferred", reason: str = "x") -> Delivery:
    return Delivery(
        when, qid, status, "r@d.test", "mx.d.test[192.0.2.1]:25", (0, 1, 2, 3), "", reason, "p"
    )


def test_attempts_are_runs_more_than_a_minute_apart() -> None:
    analyser = LogAnalyser(0)
    for when, status in [
        (1000, "deferred"),
        (1010, "deferred"),
        (1500, "deferred"),
        (4000, "sent"),
    ]:
        analyser.add(
            delivery("ABCDEF123", when, status, "connect to x[192.0.2.1]:25: Connection refused")
        )
    analyser.add(delivery("ABCDEF124", 1000))
    a = analyser.build()
    assert [(r.queue_id, r.attempts, r.deferrals, r.status) for r in a.repeated] == [
        ("ABCDEF123", 2, 3, "sent")
    ]
    assert a.repeated[0].reason_class is ReasonClass.connection_refused
    assert a.outcomes == {"sent": 1, "deferred": 1}


def test_memory_is_bounded_and_the_cap_is_reported() -> None:
    analyser = LogAnalyser(0, max_ids=100, max_keys=20)
    for i in range(5000):
        d = delivery(f"{0xA00000 + i:X}", 1000 + i, reason=f"host h{i}.test said: {i} no")
        analyser.add(d._replace(relay=f"relay{i}.test", recipient=f"u@d{i}.test"))
    analyser.add(delivery("A00001", 9000))  # an early ID again, after it was dropped
    a = analyser.build()
    assert len(analyser._ids) <= 100
    assert a.id_floor == 1
    assert a.deferred_ids >= 5000
    assert len(analyser._relays) <= 21
    assert ("(other)", 4981) in a.top_relays


# -- templates --------------------------------------------------------------------------------


def test_read_file_command_line() -> None:
    command = tools.read_file("/var/log/postfix.log", 1000, 5000, sudo=True, timeout=600)
    assert command.command_line() == (
        "timeout -k 5 600 sudo -n /usr/bin/tail -c +1001 /var/log/postfix.log"
        " | /usr/bin/head -c 5000 | /bin/grep -a -F ' status='"
    )
    probe = tools.probe_file("/var/log/mail.log", 0, 16384, sudo=False)
    assert shlex.split(probe.command_line())[4:] == [
        "/usr/bin/tail", "-c", "+1", "/var/log/mail.log", "|", "/usr/bin/head", "-c", "16384",
    ]  # fmt: skip


def test_read_journal_command_line() -> None:
    command = tools.read_journal(1_795_000_000, 1_795_086_400, sudo=True, timeout=60)
    assert command.display() == (
        "sudo -n /bin/journalctl SYSLOG_FACILITY=2 --since=@1795000000 --until=@1795086400 "
        "-o short-iso-precise --no-pager -q | /bin/grep -a -F ' status='"
    )


@pytest.mark.parametrize(
    "path", ["relative.log", "/var/log/../shadow", "/var/log/a b", "/var/log/x;y", "/", ""]
)
def test_bad_log_paths_are_refused(path: str) -> None:
    with pytest.raises(ParseError):
        tools.log_path(path)


def test_log_to_stdout_is_explained() -> None:
    with pytest.raises(UsageError, match="not to a file"):
        tools.log_path("/dev/stdout")


def test_host_answers() -> None:
    assert postfix.parse_utc_offset("+0530\n") == 19800
    assert postfix.parse_utc_offset("-0100") == -3600
    with pytest.raises(ParseError):
        postfix.parse_utc_offset("CET")
    assert logsource.parse_sizes("12 /var/log/mail.log\nstat: cannot statx\n") == {
        "/var/log/mail.log": 12
    }


def test_read_journal_of_one_unit() -> None:
    command = tools.read_journal(
        1_795_000_000, 1_795_086_400, unit="postfix@-.service", sudo=True, timeout=60
    )
    assert shlex.split(command.display())[:4] == [
        "sudo", "-n", "/bin/journalctl", "_SYSTEMD_UNIT=postfix@-.service",
    ]  # fmt: skip
    for bad in ("postfix*", "postfix.service --all", "-u"):
        with pytest.raises(ValueError, match="unit"):
            tools.read_journal(0, 1, unit=bad, sudo=True, timeout=60)


def test_read_container_command_line() -> None:
    command = tools.read_container(
        "podman", "mail.postfix_1", 1_795_000_000, 1_795_003_600, sudo=False, timeout=60
    )
    assert command.display() == (
        "/usr/bin/podman logs --timestamps --since=2026-11-18T11:06:40Z "
        "--until=2026-11-18T12:06:40Z mail.postfix_1 | /bin/grep -a -F ' status='"
    )
    for runtime, name in (("lxc", "x"), ("docker", "-v"), ("docker", "a b"), ("docker", "")):
        with pytest.raises(ValueError, match="container"):
            tools.read_container(runtime, name, 0, 1, sudo=True, timeout=60)
    with pytest.raises(ValueError, match="window"):
        tools.read_container("docker", "x", 5, 1, sudo=True, timeout=60)


def test_container_stderr_is_split_into_log_lines_and_the_runtimes_errors() -> None:
    stderr = (
        "[first 123 bytes of stderr dropped]\n"
        "2026-11-28T11:30:00.1Z Nov 28 11:30:00 mx postfix/smtp[7]: A: status=sent\n"
        "Error response from daemon: No such container: x\n"
    )
    logged, errors, dropped = logsource.split_container_stderr(stderr)
    assert logged == "2026-11-28T11:30:00.1Z Nov 28 11:30:00 mx postfix/smtp[7]: A: status=sent"
    assert errors == "Error response from daemon: No such container: x"
    assert dropped
    assert logsource.split_container_stderr("") == ("", "", False)
