"""Stand-in programs: run one command where absent programs (``/usr/bin/docker`` and
``/usr/bin/podman`` on the lab) exist as small scripts, seen by that command alone.

The real sudo answers ``sudo -l COMMAND`` only for a program that exists ("command not found"
otherwise, which would pass every refusal test for nothing), and the wrapper runs the program
it allowed; neither looks inside it. The scripts are laid over the program's directory with an
overlay mount in a private mount namespace (``unshare --mount``), so the machine and the other
processes on it see no change. Needs root (``CAP_SYS_ADMIN``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# The mount, then the command (arguments: the layer, the directory, the command's words).
_MOUNT = 'mount -t overlay overlay -o "lowerdir=$1:$2" "$2" && shift 2 && exec "$@"'


def stand_ins(scripts: dict[str, str], layer: Path) -> list[str]:
    """The words to put before a command so that each path in ``scripts`` (all in one
    directory) is an executable file with that text. ``layer``: an empty directory to use."""
    (directory,) = {os.path.dirname(path) for path in scripts}
    layer.mkdir(parents=True, exist_ok=True)
    for path, text in scripts.items():
        script = layer / os.path.basename(path)
        script.write_text(text)
        script.chmod(0o755)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT, "sh",
            str(layer), directory]  # fmt: skip


def why_not(layer: Path) -> str | None:
    """Why stand-ins cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "stand-in programs need root (a mount namespace and an overlay mount)"
    probe = "/usr/bin/mailqbot-stand-in-probe"
    ran = subprocess.run(
        [*stand_ins({probe: "#!/bin/sh\necho ok\n"}, layer), probe],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if ran.stdout != "ok\n":
        return f"no overlay mount in a private namespace here: {ran.stderr.strip()[:200]}"
    return None
