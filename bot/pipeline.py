"""The one pipeline: parse -> authorise -> run -> render -> reply -> audit.

Front ends (Slack, the console, later the scheduler) build a ``Request`` and call
``prepare`` (fast: parse and authorise, no remote work) and then ``execute``. Refusals and
results both end in ``record``: one ``command_runs`` row and one audit event, written in one
transaction. If that write fails the result is withheld: no audit, no answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import commands
from bot import audit, render
from bot.auth import Identity, permitted
from bot.db.models import CommandRun
from bot.errors import MailqbotError, PermissionDenied, UsageError
from bot.services import Services
from commands import CommandSpec

log = logging.getLogger(__name__)
Progress = Callable[[str], Awaitable[None]]


async def _no_progress(_text: str) -> None:
    return None


@dataclass(frozen=True)
class Request:
    source: str  # "slack" | "console" | "scheduler"
    user_id: str
    text: str
    team_id: str | None = None
    enterprise_id: str | None = None
    channel_id: str | None = None
    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # The chat message that shows this request's result (set by the front end once it is
    # posted, before the command runs); the audit trail keeps it.
    message_link: str | None = None


@dataclass
class Context:
    """What a command's ``run`` receives besides its arguments."""

    services: Services
    request: Request
    identity: Identity
    progress: Progress = _no_progress
    # Every remote command this request ran (command line, exit, host key, output hash).
    remote: list[dict[str, Any]] = field(default_factory=list)


class RequestLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the request id, user, command and target."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return (
            f"[{extra.get('request_id')} {extra.get('user')} {extra.get('command')}] {msg}",
            kwargs,
        )


def request_log(request: Request) -> RequestLog:
    words = request.text.split()
    command = " ".join(words[:2])[:80]
    return RequestLog(
        log, {"request_id": request.request_id, "user": request.user_id, "command": command}
    )


@dataclass(frozen=True)
class Prepared:
    spec: CommandSpec
    args: argparse.Namespace
    context: Context
    started: float


@dataclass(frozen=True)
class Outcome:
    """What a front end shows. ``ok`` False means an error: show it only to the asker."""

    ok: bool
    reply: render.Rendered
    request_id: str


async def prepare(
    request: Request, services: Services, progress: Progress = _no_progress
) -> Prepared | Outcome:
    started = time.time()
    if "\x00" in request.text:  # no database stores NUL in text; it is never meaningful here
        request = dataclasses.replace(request, text=request.text.replace("\x00", ""))
    groups = await services.groups_of(request.user_id) if request.source == "slack" else None
    identity = Identity(
        request.source,
        request.user_id,
        request.team_id,
        request.enterprise_id,
        groups or frozenset(),
        channel_id=request.channel_id,
    )
    context = Context(services, request, identity, progress)
    spec: CommandSpec | None = None
    try:
        spec, args = commands.parse(request.text)
        if spec.validate is not None:
            spec.validate(args)
        _authorise(spec, args, context)
    except MailqbotError as exc:
        outcome = "denied" if isinstance(exc, PermissionDenied) else "refused"
        return await record(context, spec, started, outcome, render.error(exc))
    return Prepared(spec, args, context, started)


async def execute(prepared: Prepared) -> Outcome:
    spec, context = prepared.spec, prepared.context
    try:
        model = await spec.run(prepared.args, context)
        rendered = render.render(spec.template, model)
    except MailqbotError as exc:
        return await record(context, spec, prepared.started, "error", render.error(exc))
    except Exception:
        ref = context.request.request_id
        request_log(context.request).exception("failed unexpectedly (reference %s)", ref)
        return await record(context, spec, prepared.started, "crashed", render.crash(ref))
    request_log(context.request).info("ok in %.2fs", time.time() - prepared.started)
    return await record(context, spec, prepared.started, "ok", rendered)


async def handle(
    request: Request, services: Services, progress: Progress = _no_progress
) -> Outcome:
    """Prepare and execute in one go (the console and the tests)."""
    prepared = await prepare(request, services, progress)
    if isinstance(prepared, Outcome):
        return prepared
    return await execute(prepared)


def hosts_of(spec: CommandSpec, args: argparse.Namespace, services: Services) -> list[str]:
    if not spec.targets_hosts:
        return []
    return [h.name for h in services.inventory.select(args.target)]


def _authorise(spec: CommandSpec, args: argparse.Namespace, context: Context) -> None:
    services = context.services
    hosts = hosts_of(spec, args, services)
    access = services.inventory.config.access
    if not permitted(
        context.identity,
        spec.permission,
        hosts,
        access,
        services.inventory,
        services.allowed_teams,
    ):
        raise PermissionDenied(
            f"You may not run `{spec.name}`"
            + (f" on {', '.join(hosts)}" if hosts else "")
            + ". Ask a mailqbot admin for a role that grants it; `/mailq help` lists "
            "what you can run."
        )


async def record(
    context: Context,
    spec: CommandSpec | None,
    started: float,
    outcome: str,
    rendered: render.Rendered,
) -> Outcome:
    """Write the run and its audit event in one transaction; withhold the answer if it fails."""
    request = context.request
    try:
        async with context.services.sessions() as session, session.begin():
            session.add(_run_row(request, spec, started, outcome, rendered))
            await audit.append(session, _audit_record(context, spec, outcome))
    except Exception:
        request_log(request).exception("audit write failed; answer withheld")
        return Outcome(False, render.audit_failed(request.request_id), request.request_id)
    return Outcome(outcome == "ok", rendered, request.request_id)


def _target(spec: CommandSpec | None, request: Request) -> str | None:
    if spec is None or not spec.targets_hosts:
        return None
    words = request.text.split()
    return words[1][:255] if len(words) > 1 else None


def _run_row(
    request: Request,
    spec: CommandSpec | None,
    started: float,
    outcome: str,
    rendered: render.Rendered,
) -> CommandRun:
    return CommandRun(
        request_id=request.request_id,
        source=request.source,
        user_id=request.user_id,
        team_id=request.team_id,
        channel_id=request.channel_id,
        command=spec.name if spec else "(unparsed)",
        text=request.text[:2000],
        target=_target(spec, request),
        started_at=datetime.fromtimestamp(started, UTC),
        finished_at=datetime.now(UTC),
        outcome=outcome,
        error=None if outcome == "ok" else rendered.text[:2000],
    )


def _audit_record(context: Context, spec: CommandSpec | None, outcome: str) -> audit.AuditRecord:
    request = context.request
    detail: dict[str, Any] = {
        "command": spec.name if spec else None,
        "text": request.text[:2000],
        "outcome": outcome,
        "channel_id": request.channel_id,
        "message_link": request.message_link,
        "replica": context.services.replica,
        "remote": context.remote,
    }
    return audit.AuditRecord(
        source=request.source,
        actor=request.user_id,
        team_id=request.team_id,
        action=f"command.{outcome}",
        host=_target(spec, request),
        request_id=request.request_id,
        detail=detail,
    )


__all__ = ["Context", "Outcome", "Prepared", "Request", "UsageError", "execute", "handle"]
