"""The terminal front end: the same pipeline as Slack, rendered as plain text."""

from __future__ import annotations

import asyncio
import getpass
import shlex
import sys

from rich.console import Console

from bot.app.pipeline import Outcome, handle
from bot.app.services import Services
from bot.context import Request

PROMPT = "mailq> "


def _request(text: str) -> Request:
    return Request(source="console", user_id=f"console:{getpass.getuser()}", text=text)


async def run_one(services: Services, text: str, out: Console) -> Outcome:
    """Run one command, showing progress on stderr while it works."""
    err = Console(stderr=True)
    with err.status(f"/mailq {text}") as status:

        async def progress(line: str) -> None:
            status.update(line)

        outcome = await handle(_request(text), services, progress)
    out.print(outcome.reply.console, markup=False, highlight=False, soft_wrap=True)
    return outcome


async def repl(services: Services, out: Console) -> None:
    out.print("mailqbot console: type a command (`help`, `summary HOST`), or `quit`.", markup=False)
    while True:
        try:
            line = await asyncio.to_thread(input, PROMPT)
        except EOFError:
            return
        text = line.strip()
        if text in {"quit", "exit"}:
            return
        if text:
            await run_one(services, text.removeprefix("/mailq ").strip(), out)


async def main(services: Services, words: list[str]) -> int:
    out = Console(highlight=False, soft_wrap=True)
    if words:
        text = words[0] if len(words) == 1 else shlex.join(words)
        outcome = await run_one(services, text, out)
        return 0 if outcome.ok else 1
    if not sys.stdin.isatty():
        ok = True
        for line in sys.stdin:
            if line.strip():
                ok = (await run_one(services, line.strip(), out)).ok and ok
        return 0 if ok else 1
    await repl(services, out)
    return 0
