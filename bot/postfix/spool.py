"""Queue lifetimes and spool disk use: ``postconf`` values and ``du`` on the deferred queue.

``postconf -h mail_version maximal_queue_lifetime bounce_queue_lifetime queue_directory``
answers one value per line in that order, in the round trip that reads the version anyway.
Postfix time values are a number with an optional unit ``s m h d w``; a bare number is in
days for both lifetimes (their default unit). ``postconf -h`` does not expand ``$name``:
a reference to another parameter read in the same call is resolved here; anything else
makes the value unknown rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import ParseError

SETTINGS = ("mail_version", "maximal_queue_lifetime", "bounce_queue_lifetime", "queue_directory")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TIME = re.compile(r"(\d{1,12})([smhdw]?)")
_REFERENCE = re.compile(r"\$(?:\{([a-z0-9_]+)\}|\(([a-z0-9_]+)\)|([a-z0-9_]+))")
# An absolute path of plain segments: nothing a shell or du could read as an option.
_QUEUE_DIRECTORY = re.compile(r"(/[A-Za-z0-9._+-]+)+")
_DU_LINE = re.compile(r"(\d{1,19})\t(\S.*)")


@dataclass(frozen=True, slots=True)
class HostSettings:
    """What the summary needs from ``postconf``; ``None`` when a value cannot be used."""

    mail_version: str
    maximal_queue_lifetime: int | None  # seconds
    bounce_queue_lifetime: int | None  # seconds
    queue_directory: str | None


def parse_settings(output: str) -> HostSettings:
    """``postconf -h`` output for ``SETTINGS``, in that order."""
    lines = output.split("\n")
    if len(lines) < len(SETTINGS) or any(lines[len(SETTINGS) :]) or not lines[0].strip():
        raise ParseError(
            f"`postconf -h {' '.join(SETTINGS)}` did not answer one value per line; check "
            "that the host runs Postfix."
        )
    raw = dict(zip(SETTINGS, (line.strip() for line in lines), strict=False))
    directory = raw["queue_directory"]
    return HostSettings(
        mail_version=raw["mail_version"],
        maximal_queue_lifetime=_lifetime(raw, "maximal_queue_lifetime"),
        bounce_queue_lifetime=_lifetime(raw, "bounce_queue_lifetime"),
        queue_directory=directory if _QUEUE_DIRECTORY.fullmatch(directory) else None,
    )


def _lifetime(raw: dict[str, str], name: str, depth: int = 0) -> int | None:
    value = raw.get(name, "")
    reference = _REFERENCE.fullmatch(value)
    if reference is not None:
        target = next(group for group in reference.groups() if group)
        return _lifetime(raw, target, depth + 1) if depth < 3 and target in raw else None
    return postfix_time(value, default_unit="d")


def postfix_time(value: str, default_unit: str = "s") -> int | None:
    """Seconds in a Postfix time value (``5d``, ``3600s``, ``2h``, ``1w``, ``7``), or None."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2) or default_unit]


def parse_du(output: str) -> int:
    """Bytes from ``du -sk`` output (``<KiB>\\t<path>``)."""
    match = _DU_LINE.fullmatch(output.strip("\n"))
    if match is None:
        raise ParseError("`du -sk` did not print `<kilobytes><tab><path>`.")
    return int(match.group(1)) * 1024


@dataclass(frozen=True, slots=True)
class DiskUse:
    """The deferred spool's size on disk, or why it is unknown."""

    bytes: int | None
    problem: str = ""  # shown as "disk use unavailable (<problem>)"


@dataclass(frozen=True, slots=True)
class Expiry:
    """When Postfix returns the oldest deferred message: at its first retry after ``at``."""

    at: int  # arrival + lifetime (epoch seconds)
    arrival: int
    parameter: str  # "maximal_queue_lifetime" or "bounce_queue_lifetime"
    lifetime: int  # seconds

    def left(self, now: float) -> float:
        """Seconds until then; negative when already due (returned at the next retry)."""
        return self.at - now


def first_expiry(
    oldest_regular: int | None, oldest_bounce: int | None, settings: HostSettings
) -> Expiry | None:
    """The deferred message that reaches its lifetime first, if the lifetimes are known."""
    candidates = [
        Expiry(arrival + lifetime, arrival, parameter, lifetime)
        for arrival, parameter, lifetime in (
            (oldest_regular, "maximal_queue_lifetime", settings.maximal_queue_lifetime),
            (oldest_bounce, "bounce_queue_lifetime", settings.bounce_queue_lifetime),
        )
        if arrival is not None and lifetime is not None
    ]
    # On a tie, name maximal_queue_lifetime: it is the one most mail is under.
    return min(
        candidates, key=lambda e: (e.at, e.parameter != "maximal_queue_lifetime"), default=None
    )
