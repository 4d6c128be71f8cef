"""``RemoteCommand.command_line``: every word quoted, pipe stages included.

The remote login shell parses the line, so it is run here through a real ``sh -c`` as well:
hostile words must arrive as single arguments and never start a command of their own.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from bot.remote.command import RemoteCommand

HOSTILE = [
    "a|b",
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "x\ny",
    "'",
    ">{marker}",
]


def test_plain_command_line_is_unchanged() -> None:
    command = RemoteCommand(("/usr/sbin/postqueue", "-j"))
    assert command.command_line() == "timeout -k 5 60 /usr/sbin/postqueue -j"
    assert command.display() == "/usr/sbin/postqueue -j"


def test_pipe_stages_follow_timeout_and_sudo_which_wrap_the_first_stage_only() -> None:
    command = RemoteCommand(
        ("/usr/bin/tail", "-c", "+1", "/var/log/postfix.log"),
        sudo=True,
        remote_timeout=30,
        pipe_to=(("/usr/bin/head", "-c", "100"), ("/bin/grep", "-a", "-F", " status=")),
    )
    assert command.command_line() == (
        "timeout -k 5 30 sudo -n /usr/bin/tail -c +1 /var/log/postfix.log"
        " | /usr/bin/head -c 100 | /bin/grep -a -F ' status='"
    )
    assert command.display() == (
        "sudo -n /usr/bin/tail -c +1 /var/log/postfix.log | /usr/bin/head -c 100"
        " | /bin/grep -a -F ' status='"
    )


@pytest.mark.parametrize("stages", [((),), (("/bin/cat",), ())])
def test_empty_stage_is_refused(stages: tuple[tuple[str, ...], ...]) -> None:
    with pytest.raises(ValueError, match="at least one word"):
        RemoteCommand(("/bin/echo",), pipe_to=stages)


@pytest.mark.parametrize("word", HOSTILE)
def test_hostile_words_stay_single_arguments_in_a_real_shell(word: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    word = word.format(marker=marker)
    command = RemoteCommand(
        ("/usr/bin/printf", "%s\\0", word),
        remote_timeout=5,
        pipe_to=(("/usr/bin/tr", "-d", word), ("/usr/bin/printf", "%s\\0", word, "end")),
    )
    words = shlex.split(command.command_line())
    assert words.count("|") == 2  # the only separators are ours
    out = subprocess.run(
        ["/bin/sh", "-c", command.command_line()], capture_output=True, timeout=10, check=True
    ).stdout
    assert out.split(b"\0")[:2] == [word.encode(), b"end"]
    assert not marker.exists()
