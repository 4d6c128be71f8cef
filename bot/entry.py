"""The ``mailqbot`` console script: run ``bot.cli.main``, then leave at once.

Tearing the interpreter down (freeing every loaded module's objects, SQLAlchemy's above
all) costs a command line ~0.15-0.2 s after its work is done and its output written, and
does nothing a finished command needs: by then ``asyncio.run`` has closed the loop, the
database engine is disposed and the audit checkpoint is written. So the script flushes
logging and the standard streams and ends the process with ``os._exit``. ``bot.cli.main``
itself returns normally (tests call it in-process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def entry() -> NoReturn:
    from bot.cli import main

    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()
    os._exit(code)
