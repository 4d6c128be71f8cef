"""Settings a postmaster checks when a queue backs up: value, recommendation, and why.

``lint(settings, resolv)`` takes ``postconf -x`` values and returns one ``Finding`` per
setting: ``ok`` or ``warn``, with a ``rule`` key that the template words (the why and the
recommendation live in ``templates/diagnose_wording.j2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.diag.host import ResolvConfs
from bot.postfix.spool import postfix_time

DAY = 86400


@dataclass(frozen=True)
class Finding:
    name: str  # the Postfix parameter
    value: str
    status: str  # ok, warn
    rule: str  # which recommendation applies (a key of the wording template)


def _seconds(settings: dict[str, str], name: str, unit: str = "s") -> int | None:
    return postfix_time(settings.get(name, ""), default_unit=unit)


def _number(settings: dict[str, str], name: str) -> int | None:
    value = settings.get(name, "")
    return int(value) if value.isdigit() else None


def lint(settings: dict[str, str], resolv: ResolvConfs | None = None) -> list[Finding]:
    found: list[Finding] = []

    def add(name: str, bad: bool, rule: str, value: str | None = None) -> None:
        shown = settings.get(name, "") if value is None else value
        found.append(Finding(name, shown, "warn" if bad else "ok", rule))

    life = _seconds(settings, "maximal_queue_lifetime", "d")
    bounce = _seconds(settings, "bounce_queue_lifetime", "d")
    if life is not None:
        add("maximal_queue_lifetime", not DAY <= life <= 5 * DAY, "queue_lifetime")
    if bounce is not None:
        add("bounce_queue_lifetime", life is not None and bounce > life, "bounce_lifetime")
    _backoff(settings, add)
    _rates(settings, add)
    _timeouts(settings, add)
    level = settings.get("smtp_tls_security_level", "")
    if "smtp_tls_security_level" in settings:
        add("smtp_tls_security_level", level in ("", "none", "encrypt", "secure"), "tls_level")
    if resolv is not None and resolv.chroot is not None:
        value = " ".join(resolv.system) + " / " + " ".join(resolv.chroot)
        add("resolv.conf", resolv.differ, "resolv_chroot", value)
    return found


def _backoff(settings: dict[str, str], add: AddFinding) -> None:
    minimal = _seconds(settings, "minimal_backoff_time")
    maximal = _seconds(settings, "maximal_backoff_time")
    run = _seconds(settings, "queue_run_delay")
    if minimal is not None:
        add("minimal_backoff_time", not 60 <= minimal <= 1800, "min_backoff")
    if maximal is not None and minimal is not None:
        add("maximal_backoff_time", maximal < minimal or maximal > 4 * 3600, "max_backoff")
    if run is not None and minimal is not None:
        add("queue_run_delay", run > minimal, "queue_run_delay")


def _rates(settings: dict[str, str], add: AddFinding) -> None:
    for name in ("smtp_destination_rate_delay", "default_destination_rate_delay"):
        delay = _seconds(settings, name)
        if delay is not None:
            add(name, delay > 0, "rate_delay")
    for name in ("smtp_destination_concurrency_limit", "default_destination_concurrency_limit"):
        limit = _number(settings, name)
        if limit is not None:
            add(name, not 5 <= limit <= 50, "concurrency")
    limit = _number(settings, "smtp_destination_recipient_limit")
    if limit is not None:
        add("smtp_destination_recipient_limit", limit < 10, "recipient_limit")


def _timeouts(settings: dict[str, str], add: AddFinding) -> None:
    connect = _seconds(settings, "smtp_connect_timeout")
    helo = _seconds(settings, "smtp_helo_timeout")
    if connect is not None:
        add("smtp_connect_timeout", not 10 <= connect <= 60, "connect_timeout")
    if helo is not None:
        add("smtp_helo_timeout", helo < 60, "helo_timeout")


class AddFinding(Protocol):
    """The signature of ``lint``'s ``add``."""

    def __call__(self, name: str, bad: bool, rule: str, value: str | None = None) -> None: ...
