"""``mailqbot init DIR``: the files an operator starts from, copied from the package's data.

They are deploy/ of the source tree, shipped in the wheel as ``bot/deploy/``
(``importlib.resources``), so an installed bot writes the very files its tests check.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

# name -> (mode, what it is, where it goes)
FILES: dict[str, tuple[int, str, str]] = {
    "mailqbot.toml": (0o644, "a commented sample config", "/etc/mailqbot/mailqbot.toml"),
    "mailqbot.env": (0o600, "the secrets, for the unit", "/etc/mailqbot/mailqbot.env"),
    "mailqbot.service": (0o644, "a systemd unit", "/etc/systemd/system/mailqbot.service"),
    "sudoers.mailqbot": (0o440, "the sudoers snippet", "each mail host: /etc/sudoers.d/mailqbot"),
    "sudoers.mailqbot-wrapper": (
        0o440,
        "the sudoers snippet for the wrapper",
        "each mail host with old sudo: /etc/sudoers.d/mailqbot",
    ),
    "mailqbot-wrapper": (
        0o755,
        "the forced-command alternative",
        "each mail host with old sudo: /usr/local/libexec/mailqbot-wrapper",
    ),
}


def data(name: str) -> bytes:
    return (files("bot") / "deploy" / name).read_bytes()


def write(directory: Path, *, force: bool = False) -> int:
    """Write every file into ``directory``; refuse (writing nothing) if any exists."""
    existing = [name for name in FILES if (directory / name).exists()]
    if existing and not force:
        print(
            f"mailqbot init: {directory} already has {', '.join(existing)}: nothing written. "
            "Choose an empty directory, or add --force to overwrite them.",
            file=sys.stderr,
        )
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    width = max(map(len, FILES))
    for name, (mode, what, where) in FILES.items():
        path = directory / name
        path.unlink(missing_ok=True)  # a read-only sudoers file from an earlier init
        path.write_bytes(data(name))
        path.chmod(mode)
        print(f"  {name.ljust(width)}  {what}; install as {where}")
    config = directory / "mailqbot.toml"
    print(
        f"\nwrote {len(FILES)} files to {directory}. Next: edit {config} (hosts, Slack ids), "
        f"`mailqbot check-config {config}`, `mailqbot hosts scan all`, `mailqbot doctor all` "
        "(docs/ops/onboarding.md)."
    )
    return 0
