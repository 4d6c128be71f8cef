"""What keeps the audit trail honest from outside the database: its key and its checkpoint.

- The **key** makes every row's hash an HMAC-SHA256: someone who can write to the database
  but does not hold the key cannot rewrite a row and re-hash the chain after it. It comes
  from ``MAILQBOT_AUDIT_KEY`` or ``MAILQBOT_AUDIT_KEY_FILE``; with neither, from
  ``audit.key`` in the state directory, made (mode 0600) on first use. Keep a copy away
  from the database host: without it the chain cannot be verified.
- The **checkpoint** is a file outside the database to which every commit that appended
  audit rows adds one line, ``{"seq": N, "hash": H}``: the head of the chain at that moment.
  Rows removed from the end of the table, or all of them, leave a checkpoint naming a row
  that is gone; ``mailqbot audit verify`` reports it. Each replica writes its own file
  (appends of one short line are atomic), or several share one on a common volume.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError
from bot.settings import Settings

log = logging.getLogger(__name__)
KEY_FILE = "audit.key"
CHECKPOINT_FILE = "audit.head"
MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class AuditTrail:
    """The audit chain's key and where its head is checkpointed."""

    key: bytes
    checkpoint: Path | None = None

    def mac(self, body: bytes) -> str:
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()

    def record_head(self, seq: int, row_hash: str) -> None:
        """Add the chain's head to the checkpoint file (one line, appended atomically)."""
        if self.checkpoint is None:
            return
        line = json.dumps({"seq": seq, "hash": row_hash}, separators=(",", ":")) + "\n"
        fd = os.open(self.checkpoint, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> AuditTrail:
        """The configured key and checkpoint; ``create`` makes a missing default key (and
        the checkpoint's directory)."""
        checkpoint = checkpoint_path(settings)
        if create:
            checkpoint.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(_key(settings, create), checkpoint)


def checkpoint_path(settings: Settings) -> Path:
    return settings.audit_checkpoint or settings.state_dir / CHECKPOINT_FILE


def read_checkpoint(path: Path) -> Iterator[tuple[int, str]]:
    """Every (seq, hash) the file names, in file order; a torn last line is skipped."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                yield int(entry["seq"]), str(entry["hash"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s line %d is not a checkpoint; skipped", path, number)


def _key(settings: Settings, create: bool) -> bytes:
    if settings.audit_key is not None:
        return _checked(settings.audit_key.get_secret_value(), "MAILQBOT_AUDIT_KEY")
    path = settings.audit_key_file or settings.state_dir / KEY_FILE
    if path.exists() or settings.audit_key_file is not None or not create:
        try:
            return _checked(path.read_text(encoding="utf-8").strip(), str(path))
        except OSError as exc:
            raise ConfigError(
                f"cannot read the audit key {path}: {exc.strerror}. Set MAILQBOT_AUDIT_KEY_FILE "
                "to the file holding it (or MAILQBOT_AUDIT_KEY to the key itself)."
            ) from None
    return _made(path)


def _checked(key: str, where: str) -> bytes:
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"the audit key from {where} is shorter than {MIN_KEY_CHARS} characters; make one "
            "with `python3 -c 'import secrets; print(secrets.token_hex(32))'`."
        )
    return key.encode()


def _made(path: Path) -> bytes:
    key = secrets.token_hex(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key + "\n")
    except FileExistsError:  # another process made it first: use theirs
        return _checked(path.read_text(encoding="utf-8").strip(), str(path))
    except OSError as exc:
        raise ConfigError(
            f"cannot create the audit key {path}: {exc.strerror}. Set MAILQBOT_STATE_DIR to a "
            "writable directory, or MAILQBOT_AUDIT_KEY_FILE to an existing key."
        ) from None
    log.warning("made a new audit key in %s: keep a copy away from the database host", path)
    return key.encode()
