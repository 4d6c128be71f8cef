"""Starting for real: the database URL as given, and the one line each start-up failure prints.

A process that cannot do its job stops at once with one line naming the problem and what
to do (``mailqbot: ...``, exit status 2, no traceback). The lines are built here, so the
code that finds a problem (``bot.slack.preflight``, ``bot.db.session``) and the table in
docs/ops/troubleshooting.md say the same thing; a test runs each failure and checks both.
"""

from __future__ import annotations

import errno
import re
import socket
from urllib.parse import urlsplit

from bot.errors import ConfigError, ServiceUnavailable

# The bot token's scopes, as app-manifest.yml asks for them (a test holds the two equal).
REQUIRED_SCOPES = ("commands", "chat:write", "files:write", "users:read", "usergroups:read")
# Slack's answers that mean "this token is not (or no longer) valid".
REJECTED = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)

# DATABASE_URL: what people write, and the driver mailqbot runs it with.
_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
DATABASE_FORMS = "postgresql://USER:PASSWORD@HOST:5432/DB (or postgres://) or sqlite:///PATH"


def database_url(url: str) -> str:
    """``url`` with the driver mailqbot uses (``postgres://`` and ``postgresql://`` run on
    asyncpg, ``sqlite:///`` on aiosqlite); ``ConfigError`` says what to write otherwise."""
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        shown = f'scheme "{scheme[:20]}"' if sep else "no scheme"
        raise ConfigError(
            f"DATABASE_URL has {shown}, which mailqbot cannot use: write {DATABASE_FORMS}."
        )
    if driver.startswith("sqlite") and (not rest.startswith("/") or rest == "/"):
        raise ConfigError(
            "DATABASE_URL for SQLite needs a file: write sqlite:///mailqbot.sqlite3 (relative) "
            "or sqlite:////var/lib/mailqbot/mailqbot.sqlite3 (absolute)."
        )
    return f"{driver}://{rest}"


def where(url: str) -> str:
    """The database's place in ``url``, never its password: ``HOST:PORT/DB`` or the file."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return parts.path.removeprefix("/") or "(memory)"
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def reason(exc: BaseException) -> str:
    """A short, stable reason for a failed connection: refused, timed out, name unknown."""
    for current in _chain(exc):
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, socket.gaierror):
            return "host name not found"
    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper: the driver's own error
    text = re.sub(r"\s+", " ", str(orig or exc)).strip()
    return text[:120] or type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
        found += [e for e in getattr(current, "exceptions", ()) if isinstance(e, BaseException)]
    for nested in list(found):
        os_error = getattr(nested, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(os_error, BaseException):
            found.append(os_error)
    return found


# -- the lines -------------------------------------------------------------------------------


def bot_token_rejected(error: str) -> ConfigError:
    return ConfigError(
        f"Slack rejected SLACK_BOT_TOKEN ({error}): set it to the app's Bot User OAuth Token "
        "(xoxb-..., under OAuth & Permissions) and start again."
    )


def app_token_rejected(error: str) -> ConfigError:
    return ConfigError(
        f"Slack rejected SLACK_APP_TOKEN ({error}): set it to an app-level token with "
        "connections:write (xapp-..., under Basic Information), or unset it for HTTP mode."
    )


def scopes_missing(missing: list[str]) -> ConfigError:
    return ConfigError(
        f"the bot token lacks the scope(s) {', '.join(missing)}: add them under OAuth & "
        "Permissions (app-manifest.yml lists them all), reinstall the app and start again."
    )


def slack_unreachable(url: str, why: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"cannot reach Slack at {url} ({why}): check the network, the proxy (HTTPS_PROXY) "
        "and SLACK_API_URL."
    )


def socket_mode_gave_up(seconds: float) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"no Socket Mode connection to Slack for {seconds:g}s: giving up; check the network "
        "and https://status.slack.com, then start again (the service manager can restart it)."
    )


def database_unreachable(url: str, why: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"cannot open the database at {where(url)} ({why}): check DATABASE_URL (host, port, "
        "user, password, database) and that the database server runs."
    )
