"""A remote command: a pure value built from a fixed template and validated arguments."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """A command line built only from a fixed template with validated arguments.

    ``argv`` is quoted with ``shlex.quote`` when sent; ``remote_timeout`` bounds the command on
    the host with coreutils ``timeout``; ``sudo`` marks a tool that needs root, run under
    ``sudo -n`` (never prompting) on hosts configured with ``sudo = true`` (the executor drops
    it elsewhere). deploy/sudoers.mailqbot and deploy/mailqbot-wrapper allow exactly the
    command lines the templates build (tests/security/test_least_privilege.py checks both).
    ``pipe_to`` adds unprivileged filter stages after it (``argv | stage1 | stage2``), each
    quoted word by word like ``argv``; the ``|`` between stages is the only unquoted text sent
    to the remote shell. ``timeout`` and ``sudo`` wrap ``argv`` only, and the exit status is the
    last stage's: a failure of an earlier stage shows only on stderr, so a caller that pipes
    must check stderr itself (and run with ``check=False`` if the last stage may exit non-zero).
    Create these only in ``bot/postfix/tools.py`` template functions, never from user text.
    ``changes_queue`` marks a command that changes mail on the host (postsuper, a flush):
    the audited gateway records its intent before it runs, and the executor never retries it
    once it may have started.
    """

    argv: tuple[str, ...]
    sudo: bool = False
    remote_timeout: float = 60.0
    changes_queue: bool = False
    pipe_to: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.argv or not all(self.pipe_to):
            raise ValueError("a command and every pipe stage need at least one word")

    def command_line(self) -> str:
        # timeout runs outside sudo so the sudoers rule names the MTA tool itself.
        prefix: list[str] = ["timeout", "-k", "5", f"{self.remote_timeout:g}"]
        if self.sudo:
            prefix += ["sudo", "-n"]
        stages = [(*prefix, *self.argv), *self.pipe_to]
        return " | ".join(" ".join(shlex.quote(part) for part in stage) for stage in stages)

    def display(self) -> str:
        """The command as people read it (no ``timeout`` prefix), for messages."""
        first = ("sudo", "-n", *self.argv) if self.sudo else self.argv
        return " | ".join(shlex.join(stage) for stage in (first, *self.pipe_to))
