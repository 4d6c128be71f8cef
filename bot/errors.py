"""The mailqbot exception tree.

Every error a user can meet is a ``MailqbotError``; its ``user_message`` says what went wrong
and what to do next, and is safe to show in Slack or the terminal.

    MailqbotError
    ├── ConfigError                 the config file or environment is invalid
    ├── UsageError                  a command was called with bad arguments
    ├── UnknownHost                 a host name that is not in the inventory
    ├── PermissionDenied            the caller may not run this command
    ├── DatabaseNotMigrated         the database schema is behind the code
    ├── ServiceUnavailable          Slack or the database could not be used at start
    ├── AuditUnavailable            the audit trail could not be written: a change was not made
    ├── PlanClosed                  the plan is no longer waiting for this step
    ├── NotInQueue                  a queue ID that names no queued message
    ├── ParseError                  MTA output could not be understood (never a false success)
    └── SSHError                    anything that went wrong reaching or running on a host
        ├── HostUnreachable         refused, no route, DNS failure, or no SSH banner in time
        ├── AuthFailed              the host refused our key
        ├── HostKeyMismatch         the host key is not the pinned one, or known_hosts is missing
        ├── CommandTimeout          the command did not finish within its time limit
        ├── SudoPasswordRequired    sudo asked for a password (the sudoers rule is missing)
        └── CommandFailed           the command ran and exited non-zero
            ├── ConnectionLost      the connection dropped mid-command: outcome unknown
            └── OutputTooLarge      more output than mailqbot keeps in memory; channel closed

Tests (tests/bot/test_errors.py) hold this tree against the classes below.
"""

from __future__ import annotations


class MailqbotError(Exception):
    """Base class: ``user_message`` is shown to the user as is."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigError(MailqbotError):
    pass


class UsageError(MailqbotError):
    def __init__(self, user_message: str, usage: str = "") -> None:
        super().__init__(user_message)
        self.usage = usage


LIST_LIMIT = 25  # names shown in a message; a fleet of 1,000 stays far inside Slack's limits


def short_list(names: list[str], limit: int = LIST_LIMIT) -> str:
    """``a, b, c`` or, past ``limit``, the first ones and ``and N more``."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit:,} more"


class UnknownHost(MailqbotError):
    """A name that is no host (or group); suggests the closest names (``difflib``)."""

    def __init__(self, name: str, known: list[str], groups: list[str] | None = None) -> None:
        import difflib

        candidates = [*known, *(groups or []), *(["all"] if groups is not None else [])]
        self.suggestions = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        message = f"Unknown host `{name}`."
        if self.suggestions:
            message += f" Did you mean {' or '.join(f'`{s}`' for s in self.suggestions)}?"
        listing = short_list(known) if known else "(none configured)"
        message += f" Known hosts: {listing}."
        if groups is not None:
            message += f" Groups: {short_list([*groups, 'all'])}."
        super().__init__(message)
        self.name = name
        self.known = known


class PermissionDenied(MailqbotError):
    pass


class DatabaseNotMigrated(MailqbotError):
    pass


class ServiceUnavailable(MailqbotError):
    """Slack or the database could not be reached, or refused the bot, at start: the
    message is one line naming the problem and what to do."""


class AuditUnavailable(MailqbotError):
    """The audit trail could not be written, so a change was not made."""


class PlanClosed(MailqbotError):
    """The plan is no longer waiting for this step (decided, expired, run)."""


class NotInQueue(MailqbotError):
    """The queue ID names no queued message (delivered, deleted, or never there)."""


class ParseError(MailqbotError):
    pass


class SSHError(MailqbotError):
    """Base of remote failures; ``host`` names the inventory host."""

    def __init__(self, host: str, user_message: str) -> None:
        super().__init__(user_message)
        self.host = host


class HostUnreachable(SSHError):
    pass


class AuthFailed(SSHError):
    pass


class HostKeyMismatch(SSHError):
    pass


class CommandTimeout(SSHError):
    pass


class SudoPasswordRequired(SSHError):
    pass


class CommandFailed(SSHError):
    def __init__(self, host: str, user_message: str, exit_status: int, stderr: str) -> None:
        super().__init__(host, user_message)
        self.exit_status = exit_status
        self.stderr = stderr


class ConnectionLost(CommandFailed):
    """The connection dropped while the command ran: output incomplete, outcome unknown."""


class OutputTooLarge(CommandFailed):
    """The command printed more than ``run`` keeps in memory; its channel was closed."""
