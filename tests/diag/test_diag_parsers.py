"""Pure parsers of posttls-finger, postconf, resolv.conf and stat output, on real lab captures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.diag.host import (
    map_file,
    parse_probe,
    parse_resolv_confs,
    parse_settings,
    parse_stat,
)
from bot.diag.lint import lint
from bot.postfix.tools import checked_domain, probe, resolv_confs, stat_file

DATA = Path(__file__).resolve().parents[1] / "data"


def capture(name: str) -> str:
    return (DATA / f"diag-{name}.txt").read_text()


def test_tls_offered_and_working() -> None:
    found = parse_probe(capture("ptf-tls-ok"))
    assert found.outcome == "ok"
    assert found.peer == "127.0.0.12[127.0.0.12]:25"
    assert found.banner == "220 mx.tls.test ESMTP lab tls_ok"
    assert "STARTTLS" in found.ehlo
    assert found.starttls == "ok"
    assert found.trust == "Untrusted"
    assert found.tls is not None
    assert found.tls.startswith("TLSv1.3 with cipher")
    assert found.cert_subject == "CN=mx.tls.test"
    assert found.cert_issuer == "mx.tls.test"
    # the certificate in the capture was made for 30 days; its notAfter is in the PEM
    assert found.cert_not_after is not None
    assert found.cert_not_after > 1_700_000_000


def test_starttls_refused_and_not_offered() -> None:
    refused = parse_probe(capture("ptf-tls-refused"))
    assert (refused.outcome, refused.starttls) == ("ok", "refused")
    assert refused.error == "STARTTLS rejected: 454 4.7.0 TLS not available due to local problem"
    plain = parse_probe(capture("ptf-notls"))
    assert (plain.outcome, plain.starttls, plain.tls) == ("ok", "not_offered", None)


@pytest.mark.parametrize(
    ("name", "outcome", "error"),
    [
        ("refused", "refused", "connect to 127.0.0.3[127.0.0.3]:25: Connection refused"),
        ("timeout", "timeout", "connect to 127.0.0.4[127.0.0.4]:25: Connection timed out"),
        ("greeting-timeout", "greeting_timeout", "timeout while reading server greeting"),
        (
            "lookup-failed",
            "lookup_failed",
            "Host or domain name not found. Name service error "
            "for name=greylist.test type=A: Host not found",
        ),
    ],
)
def test_failures_keep_postfix_wording(name: str, outcome: str, error: str) -> None:
    found = parse_probe(capture(f"ptf-{name}"))
    assert (found.outcome, found.error) == (outcome, error)
    assert not found.answered


def test_421_banner_and_auth_offers() -> None:
    busy = parse_probe(capture("ptf-banner-421"))
    assert busy.outcome == "rejected"
    assert busy.answered
    assert busy.banner is not None
    assert busy.banner.startswith("421 4.7.0 mx.busy.test")
    assert parse_probe(capture("ptf-auth")).auth == ("PLAIN", "LOGIN")
    submission = parse_probe(capture("ptf-submission"))
    assert submission.peer == "127.0.0.14[127.0.0.14]:587"
    assert submission.auth == ("PLAIN", "LOGIN")


def test_postconf_and_lint() -> None:
    settings = parse_settings(capture("postconf-x"))
    assert settings["relayhost"] == ""
    assert settings["transport_maps"] == "hash:/etc/postfix/mailqbot-lab/transport"
    assert settings["smtp_connect_timeout"] == "5s"
    services = parse_settings(capture("postconf-P"))
    assert services["relay/unix/smtp_sasl_auth_enable"] == "yes"
    resolv = parse_resolv_confs(capture("resolv-conf"))
    assert resolv.system == ("10.255.255.53",)
    assert resolv.chroot == ("127.0.0.1",)
    assert resolv.differ
    findings = {f.name: f for f in lint(settings, resolv)}
    warned = {name for name, f in findings.items() if f.status == "warn"}
    assert warned == {
        "minimal_backoff_time",
        "smtp_connect_timeout",
        "smtp_helo_timeout",
        "smtp_tls_security_level",
        "resolv.conf",
    }
    assert findings["maximal_queue_lifetime"].value == "5d"


@pytest.mark.parametrize(
    ("name", "key", "shown"),
    [
        ("postconf-x-static", "smtp_sasl_password_maps", "static:(redacted)"),
        ("postconf-x-inline", "smtp_sasl_password_maps", "inline:(redacted)"),
        ("postconf-P-static", "relay/unix/smtp_sasl_password_maps", "static:(redacted)"),
        (
            "postconf-P",
            "relay/unix/smtp_sasl_password_maps",
            "hash:/etc/postfix/mailqbot-lab/sasl_passwd",
        ),
    ],
)
def test_postconf_values_are_redacted_as_parsed(name: str, key: str, shown: str) -> None:
    raw = capture(name)
    settings = parse_settings(raw)
    assert "Zq7-" in raw or shown.startswith("hash:")  # the capture holds a password
    assert "Zq7-" not in repr(settings)
    assert settings[key] == shown
    path = map_file(settings[key])
    assert path == (
        "/etc/postfix/mailqbot-lab/sasl_passwd.db" if shown.startswith("hash:") else None
    )


def test_composite_maps_keep_file_paths_only() -> None:
    settings = parse_settings(capture("postconf-x-static"))
    assert settings["transport_maps"] == (
        "hash:/etc/postfix/mailqbot-lab/transport, "
        "unionmap:{inline:(redacted), proxy:lmdb:/etc/postfix/mailqbot-lab/transport2}"
    )
    assert settings["smtp_sasl_auth_enable"] == "yes"  # plain values stay as they are
    assert map_file("proxy:hash:/etc/postfix/sasl_passwd") == "/etc/postfix/sasl_passwd.db"
    assert map_file("lmdb:/etc/p/s, static:(redacted)") == "/etc/p/s.lmdb"  # the first map
    assert map_file("static:(redacted), hash:/etc/p/s") is None
    assert map_file("") is None


def test_lint_flags_rate_delay_and_lifetimes() -> None:
    settings = {
        "maximal_queue_lifetime": "30d",
        "bounce_queue_lifetime": "40d",
        "smtp_destination_rate_delay": "10s",
        "smtp_destination_concurrency_limit": "2",
    }
    warned = {f.name for f in lint(settings) if f.status == "warn"}
    assert warned == set(settings)


def test_stat_output() -> None:
    assert parse_stat(capture("stat")) == (12288, 1795872028)
    assert parse_stat("stat: cannot statx") is None


def test_commands_take_only_validated_arguments() -> None:
    line = probe("127.0.0.2", 25, connect=2, command=3).command_line()
    assert line.endswith("-C '[127.0.0.2]:25'")
    assert probe("Bücher.Example", None, connect=2, command=3).argv[-1] == "xn--bcher-kva.example"
    for bad in ("-oProxyCommand=x", "a;b.example", "$(id).example", "example", "a b.example"):
        assert checked_domain(bad) is None
        with pytest.raises(ValueError, match="domain"):
            probe(bad, None, connect=2, command=3)
    with pytest.raises(ValueError, match="IP"):
        probe("mx.example.com", 25, connect=2, command=3)
    with pytest.raises(ValueError, match="path"):
        resolv_confs("/var/spool/postfix; rm -rf /")
    with pytest.raises(ValueError, match="path"):
        stat_file("../etc/shadow")
