"""Refusal cases and an in-process Slack front end over demo hosts, for any command's tests.

``slack_world(...)`` runs the real Bolt app (``build_app``) over HTTP on 127.0.0.1, with
the real signature check, talking to the fake Slack, on demo hosts that are real in-process
SSH servers recording every command line they receive, and a real database. Tests post
signed slash commands and button clicks the way Slack does.

``injected(template)`` puts every hostile token of ``INJECTIONS`` where ``{X}`` is in a
command template; ``expect_refused(world, case)`` proves one case was refused: one
ephemeral reply that explains (not a crash), one audit row (denied/refused) for the caller,
nothing posted in the channel, and no command line reached any host.

    async with slack_world(db_url, tmp_path, access, fake_slack) as world:
        for case in injected("purge mx1 id={X} reason=test"):
            await expect_refused(world, case, user="U0OPERATOR")
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import messages
from bot.app.runtime import open_services
from bot.app.services import LiveServices, Services
from bot.db.models import AuditEvent
from bot.demo import demo_hosts
from bot.demo.ssh import ScriptedSSHServer
from bot.inventory import Access, Inventory
from bot.settings import Settings
from bot.slack.alerts import herald_for
from bot.slack.app import build_app, learn_own_team
from bot.slack.client import make_client
from bot.slack.http import Endpoint
from bot.slack.payloads import slack_text
from bot.slack.running import LISTENERS
from helpers.fakes import FakeSlack, block_actions_body, sign, slash_command_body

SECRET = "refusal-tests-signing-secret"
TEAM = "T0LAB"
CHANNEL = "C0LAB"

# Hostile tokens: shell syntax, option injection, quoting, control characters, overlong
# text, look-alike characters. Each must be refused wherever a command takes a value that
# is validated (hosts, queue IDs, option names and values), or stay data that never reaches
# a host's command line (free-text filters such as ``reason=``).
INJECTIONS: tuple[tuple[str, str], ...] = (
    ("semicolon", "mx1;id"),
    ("and-and", "mx1&&id"),
    ("pipe", "mx1|id"),
    ("subshell", "$(id)"),
    ("backticks", "`id`"),
    ("quoted-spaces", "'mx1; rm -rf /'"),
    ("double-quoted", '"$(reboot)"'),
    ("unbalanced-quote", "mx1'"),
    ("newline", "mx1\nid"),
    ("carriage-return", "mx1\rid"),
    ("nul", "mx1\x00id"),
    ("long-option", "--help"),
    ("ssh-option", "-oProxyCommand=id"),
    ("double-dash", "-- mx1;id"),
    ("dollar-var", "${IFS}id"),
    ("redirect", ">/etc/passwd"),
    ("glob", "*"),
    ("path", "../../etc/shadow"),
    ("overlong", "A" * 5000),
    ("cyrillic-homoglyph", "m\u0445\u0031"),  # "mх1" with a Cyrillic ha
    ("fullwidth", "\uff4d\uff58\uff11"),  # "ｍｘ１"
    ("zero-width", "mx\u200b1"),
    ("rtl-override", "mx1\u202e"),
    ("slack-mention", "<!channel>"),
)


@dataclass(frozen=True)
class Case:
    id: str
    text: str


def injected(template: str) -> list[Case]:
    """One case per hostile token, put where ``{X}`` is (plain replace: no formatting)."""
    return [
        Case(f"{template.split()[0]}:{name}", template.replace("{X}", token))
        for name, token in INJECTIONS
    ]


@dataclass
class SlackWorld:
    live: LiveServices  # what the app serves from; a test's change is a reload's change
    app: AsyncApp
    servers: dict[str, ScriptedSSHServer]
    sessions: async_sessionmaker[AsyncSession]
    slack: FakeSlack
    url: str
    _names: itertools.count[int]

    @property
    def services(self) -> Services:
        return self.live.now()

    def host_commands(self) -> list[str]:
        """Every command line any demo host received, in host order."""
        return [c for name in sorted(self.servers) for c in self.servers[name].commands]

    def response_name(self) -> str:
        return f"r{next(self._names)}"

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> int:
        signed = sign(SECRET, body) | (headers or {})
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/slack/events", data=body, headers=signed) as response,
        ):
            await response.read()
            return response.status

    async def slash(self, text: str, user: str = "U0VIEWER", **options: Any) -> str:
        """Post ``/mailq text`` signed; returns the response_url name its replies go to."""
        name = self.response_name()
        options = {"team_id": TEAM, "channel_id": CHANNEL} | options
        body = slash_command_body(
            text, user_id=user, response_url=self.slack.response_url(name), **options
        )
        assert await self.post(body) == 200
        return name

    async def click(self, value: str, user: str, message_ts: str, **options: Any) -> str:
        """Click a ``mailq_run_replace`` button carrying ``value`` on the message at ts."""
        name = self.response_name()
        body = block_actions_body(
            "mailq_run_replace", value, user_id=user, team_id=options.pop("team_id", TEAM),
            channel_id=CHANNEL, message_ts=message_ts,
            response_url=self.slack.response_url(name), **options,
        )  # fmt: skip
        assert await self.post(body) == 200
        return name

    async def ephemeral(self, name: str, timeout: float = 10) -> dict[str, Any]:
        (reply,) = await self.slack.wait_for(f"response_url:{name}", timeout=timeout)
        assert reply.args.get("response_type") == "ephemeral", reply.args
        return reply.args

    async def audit_rows(self) -> list[AuditEvent]:
        async with self.sessions() as session:
            stmt = select(AuditEvent).order_by(AuditEvent.seq)
            return list((await session.scalars(stmt)).all())


@asynccontextmanager
async def slack_world(
    db_url: str, tmp_path: Path, access: Access, slack: FakeSlack, **config_changes: Any
) -> AsyncIterator[SlackWorld]:
    """The Bolt app over HTTP on demo hosts whose inventory carries ``access`` (and any other
    top-level config sections given, such as ``monitor=MonitorSection(...)``)."""
    async with demo_hosts(tmp_path) as demo:
        config = demo.inventory.config.model_copy(update={"access": access, **config_changes})
        settings = Settings(
            DATABASE_URL=db_url,
            SLACK_BOT_TOKEN="xoxb-refusals",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
        )
        async with open_services(settings, Inventory(config)) as services:
            live = LiveServices(services)
            client = make_client(settings)
            herald = herald_for(live, client)
            app = build_app(live, client, herald)
            await learn_own_team(app.client, live)
            endpoint = Endpoint(app, SECRET)  # /slack/events as `mailqbot serve` has it
            runner = web.AppRunner(endpoint.web_app(), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                host, port = runner.addresses[0][:2]
                yield SlackWorld(
                    live, app, demo.servers, services.sessions, slack, f"http://{host}:{port}",
                    itertools.count(1),
                )  # fmt: skip
            finally:
                await endpoint.drain()
                await LISTENERS.drain()  # as serve does: commands acked, then root edits
                await herald.courier.drain()
                await runner.cleanup()


REFUSED = ("command.denied", "command.refused")
NOT_AN_EXPLANATION = (messages.CRASH.split("(")[0], messages.AUDIT_FAILED.split("(")[0])


async def expect_refused(
    world: SlackWorld, case: Case, user: str = "U0VIEWER", says: str | None = None, **options: Any
) -> str:
    """Post ``case`` as ``user``; assert it was refused cleanly; return the reply text."""
    before_rows = len(await world.audit_rows())
    before_commands = len(world.host_commands())
    before_posts = len(world.slack.calls_to("chat.postMessage"))
    reply = await world.ephemeral(await world.slash(case.text, user=user, **options))
    text = str(reply.get("text", ""))
    assert text.strip(), f"{case.id}: empty refusal"
    assert not text.startswith(NOT_AN_EXPLANATION), f"{case.id}: {text}"
    if says is not None:
        assert says in text, f"{case.id}: {text!r} does not say {says!r}"
    rows = await world.audit_rows()
    assert len(rows) == before_rows + 1, f"{case.id}: {len(rows) - before_rows} audit rows"
    row = rows[-1]
    assert (row.action, row.actor) in {(a, user) for a in REFUSED}, (case.id, row.action)
    # As the pipeline records it: Slack's escaping undone, NUL dropped (no database stores it).
    assert row.detail["text"] == slack_text(case.text).replace("\x00", "")[:2000], case.id
    assert len(world.host_commands()) == before_commands, f"{case.id}: a host ran a command"
    assert len(world.slack.calls_to("chat.postMessage")) == before_posts, case.id
    return text
