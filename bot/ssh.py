"""The one SSH executor: pinned host keys, explicit timeouts, per-host caps, reused connections.

(Interface fixed; the executor is being implemented.)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """A command line built only from a fixed template with validated arguments.

    ``argv`` is quoted with ``shlex.quote`` when sent; ``remote_timeout`` bounds the command on the host with coreutils ``timeout``;
    ``sudo`` runs the tool under ``sudo -n`` (never prompting).
    Create these only in ``bot/mta/`` template functions, never from user text.
    """

    argv: tuple[str, ...]
    sudo: bool = False
    remote_timeout: float = 60.0
    destructive: bool = False

    def command_line(self) -> str:
        # timeout runs outside sudo so the sudoers rule names the MTA tool itself.
        prefix: list[str] = ["timeout", "-k", "5", f"{self.remote_timeout:g}"]
        if self.sudo:
            prefix += ["sudo", "-n"]
        return " ".join(shlex.quote(part) for part in (*prefix, *self.argv))


@dataclass(frozen=True, slots=True)
class CommandResult:
    host: str
    command_line: str
    exit_status: int
    stdout: str
    stderr: str
    elapsed: float
    host_key_fingerprint: str
