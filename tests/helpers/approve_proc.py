"""One bot process: run one command as one user, print the outcome as JSON.

approve_proc.py USER TEXT    (DATABASE_URL, MAILQBOT_CONFIG, MAILQBOT_REPLICA_ID from env)

A script, run by its path (tests/actions/test_plan_races.py takes the path from the module).
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.context import Request
from bot.settings import Settings


async def main(user: str, text: str) -> None:
    async with open_services(Settings()) as services:
        outcome = await handle(Request("slack", user, text, team_id="T0RACE"), services)
    print(json.dumps({"ok": outcome.ok, "text": outcome.reply.text}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
