"""Postfix table specs lose their in-line content; file maps keep their type and path."""

from __future__ import annotations

import time

import pytest

from bot.postfix.redact import redact_parameter, redact_table_spec, redact_text, split_list

SASL = "smtp_sasl_password_maps"


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (SASL, "static:lab-user:Zq7secret", "static:(redacted)"),
        (SASL, "inline:{ [relay.example]:587 = user:Zq7secret }", "inline:(redacted)"),
        (SASL, "inline:{ a = b, { c = d, Zq7secret } }", "inline:(redacted)"),
        (SASL, "randmap:{user:Zq7secret, other:Zq7secret}", "randmap:(redacted)"),
        ("relay/unix/smtp_sasl_password_maps", "static:u:Zq7secret", "static:(redacted)"),
        ("lmtp_sasl_password_maps", "static:{ u:Zq7 secret }", "static:(redacted)"),
        (SASL, "hash:/etc/postfix/sasl_passwd", "hash:/etc/postfix/sasl_passwd"),
        (SASL, "proxy:hash:/etc/postfix/sasl_passwd", "proxy:hash:/etc/postfix/sasl_passwd"),
        (SASL, "debug:proxy:lmdb:/etc/p/s", "debug:proxy:lmdb:/etc/p/s"),
        (SASL, "proxy:static:Zq7secret", "proxy:static:(redacted)"),
        (SASL, "mysql:/etc/postfix/mysql-sasl.cf", "mysql:/etc/postfix/mysql-sasl.cf"),
        (
            SASL,
            "hash:/etc/a hash:/etc/b,texthash:/etc/c",
            "hash:/etc/a, hash:/etc/b, texthash:/etc/c",
        ),
        (SASL, "hash:/etc/a, static:u:Zq7secret", "hash:/etc/a, static:(redacted)"),
        (SASL, "hash:sasl_passwd", "hash:(redacted)"),  # only plain absolute paths
        (SASL, "hash:/etc/u:Zq7secret", "hash:(redacted)"),
        (SASL, "user:Zq7secret", "(redacted)"),  # no known type: perhaps the type was left out
        (SASL, "Zq7secret", "(redacted)"),
        (SASL, "$relay_credentials", "$relay_credentials"),
        (SASL, "inline:{ [relay]:587 = u:Zq7secret", "inline:(redacted)"),  # never closed
        (SASL, "", ""),
        (
            "transport_maps",
            "hash:/etc/t, unionmap:{inline:{ s.example = smtp:[Zq7secret] }, proxy:lmdb:/etc/t2}",
            "hash:/etc/t, unionmap:{inline:(redacted), proxy:lmdb:/etc/t2}",
        ),
        (
            "transport_maps",
            "pipemap:{randmap:{a, b}, static:Zq7secret}x",
            "pipemap:(redacted)",
        ),
        ("header_checks", "pcre:/etc/postfix/header_checks", "pcre:/etc/postfix/header_checks"),
        (
            "smtpd_recipient_restrictions",
            "permit_mynetworks, check_sender_access inline:{ a@b = REJECT Zq7secret }, reject",
            "permit_mynetworks, check_sender_access inline:(redacted), reject",
        ),
        ("relay/unix/smtp_sasl_auth_enable", "yes", "yes"),
        ("relay/unix/syslog_name", "postfix/$service_name", "postfix/$service_name"),
        ("relayhost", "[smtp.example.com]:587", "[smtp.example.com]:587"),
        ("virtual_transport", "lmtp:unix:private/dovecot", "lmtp:unix:private/dovecot"),
        ("maximal_queue_lifetime", "5d", "5d"),
    ],
)
def test_redact_parameter(name: str, value: str, shown: str) -> None:
    assert redact_parameter(name, value) == shown
    assert "Zq7" not in shown


def test_free_text_keeps_words_and_hides_specs() -> None:
    # postconf's own warning, captured from `postconf -P` with an unknown -o parameter
    warning = (
        "postconf: warning: /etc/postfix/master.cf: unused parameter: foo_bar=static:u:Zq7-unused-o"
    )
    assert redact_text(warning) == (
        "postconf: warning: /etc/postfix/master.cf: unused parameter: foo_bar=static:(redacted)"
    )
    fatal = (
        """postconf: fatal: main.cf, line 47: missing '=' after attribute name: "static:u:Zq7" """
    )
    assert "Zq7" not in redact_text(fatal)
    assert redact_text("no table here: a hashtag, a static IP") == (
        "no table here: a hashtag, a static IP"
    )


def test_lists_and_nesting() -> None:
    assert split_list(" a, b\tc ,inline:{ x = y, z }, d") == [
        "a",
        "b",
        "c",
        "inline:{ x = y, z }",
        "d",
    ]
    deep = "pipemap:{" * 20 + "static:Zq7" + "}" * 20
    assert "Zq7" not in redact_table_spec(deep)
    assert redact_table_spec(deep).count("pipemap:{") == 8  # deeper levels are hidden whole


def test_scans_are_linear() -> None:
    """About 1 MB each, scanned in about 0.1-0.4 s; a quadratic scan would take minutes."""
    hostile = ["proxy:" * 300_000, "{" * 1_000_000, "static:x " * 100_000, "a " * 500_000]
    started = time.perf_counter()
    for text in hostile:
        redact_parameter(SASL, text)
        redact_text(text)
    assert time.perf_counter() - started < 5.0
