"""The SSH executor tests: every one fails if it leaves a task running or a file descriptor
open (``no_leaks``, with the scripted servers, in helpers/sshservers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _leak_checked(no_leaks: None) -> None:
    return None
