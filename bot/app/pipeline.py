"""The one pipeline: parse -> authorise -> run -> render -> reply -> audit.

Front ends (Slack, the console, later the scheduler) build a ``Request`` and call
``prepare`` (fast: parse and authorise, no remote work) and then ``execute``. Refusals and
results both end in ``record``: one ``command_runs`` row and one audit event, written in one
transaction. If that write fails a read's result is withheld (no audit, no answer); a
change that already ran on a host is reported truthfully, with the warning that its record
is missing. Remote calls go through the request's gateway (``ctx.remote``), which scopes
them to the caller's hosts and journals every queue change before it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import commands
from bot import render
from bot.app.registry import CommandSpec
from bot.app.services import Services
from bot.context import Context, Identity, Progress, Request, no_progress
from bot.errors import AuditUnavailable, MailqbotError, PermissionDenied, UnknownHost, UsageError
from bot.stores import audit, runs

log = logging.getLogger(__name__)


class RequestLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the request id, user, command and target."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs["extra"] = extra | dict(kwargs.get("extra") or {})  # JSON lines show them
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
    spec: CommandSpec[Any]
    args: Any  # the command's Args, parsed once
    context: Context
    started: float


@dataclass(frozen=True)
class Outcome:
    """What a front end shows. ``ok`` False means an error: show it only to the asker."""

    ok: bool
    reply: render.Rendered
    request_id: str


async def prepare(
    request: Request, services: Services, progress: Progress = no_progress
) -> Prepared | Outcome:
    started = time.time()
    if "\x00" in request.text:  # no database stores NUL in text; it is never meaningful here
        request = dataclasses.replace(request, text=request.text.replace("\x00", ""))
    groups = await services.groups_of(request.user_id) if request.source == "slack" else None
    context = Context(services, request, Identity.of(request, groups or frozenset()), progress)
    spec: CommandSpec[Any] | None = None
    try:
        spec, words = commands.parse(request.text)
        context.permission = spec.permission
        args = spec.parse(words)  # once: run() gets these typed arguments
        _authorise(spec, words, context)
    except MailqbotError as exc:
        outcome = "denied" if isinstance(exc, PermissionDenied) else "refused"
        log_failure(context.request, spec, outcome, exc)
        return await record(context, spec, started, outcome, render.error(exc))
    return Prepared(spec, args, context, started)


def log_failure(
    request: Request, spec: CommandSpec[Any] | None, outcome: str, exc: MailqbotError
) -> None:
    """One warning for a refused request or a failed command: host, request id, reason."""
    host = getattr(exc, "host", None) or _target(spec, request) or "-"
    reason = " ".join(exc.user_message.split())[:300]
    what = "command failed" if outcome == "error" else f"request {outcome}"
    request_log(request).warning(
        "%s: host=%s request_id=%s reason=%s",
        what, host, request.request_id, reason,
        extra={"host": host, "reason": reason},
    )  # fmt: skip


def _failure(exc: MailqbotError) -> str:
    """The outcome word of a run that ended in ``exc``: a refusal is ``denied`` (no
    permission) or ``refused`` (bad input, or a change the audit trail could not take),
    whenever it is found; anything else is an ``error``."""
    if isinstance(exc, PermissionDenied):
        return "denied"
    if isinstance(exc, UsageError | UnknownHost | AuditUnavailable):
        return "refused"
    return "error"


async def execute(prepared: Prepared) -> Outcome:
    spec, context = prepared.spec, prepared.context
    try:
        model = await spec.run(prepared.args, context)
        rendered = render.render(spec.template, model)
    except MailqbotError as exc:
        log_failure(context.request, spec, _failure(exc), exc)
        return await record(context, spec, prepared.started, _failure(exc), render.error(exc))
    except Exception:
        ref = context.request.request_id
        host = _target(spec, context.request) or "-"
        request_log(context.request).exception(
            "command crashed: host=%s request_id=%s reason=unexpected error (reference %s)",
            host, ref, ref, extra={"host": host, "reason": "unexpected error"},
        )  # fmt: skip
        return await record(context, spec, prepared.started, "crashed", render.crash(ref))
    request_log(context.request).info("ok in %.2fs", time.time() - prepared.started)
    return await record(context, spec, prepared.started, "ok", rendered)


async def handle(request: Request, services: Services, progress: Progress = no_progress) -> Outcome:
    """Prepare and execute in one go (the console and the tests)."""
    prepared = await prepare(request, services, progress)
    if isinstance(prepared, Outcome):
        return prepared
    return await execute(prepared)


def _authorise(spec: CommandSpec[Any], words: argparse.Namespace, context: Context) -> None:
    hosts = spec.hosts(words, context.services.inventory)
    if context.request.replay_unchecked and spec.permission in ("act", "approve"):
        raise AuditUnavailable(
            "mailqbot could not reach its database to check that Slack did not deliver this "
            "request twice, so it did nothing. Ask again in a minute."
        )
    if not context.may(spec.permission, hosts):
        raise PermissionDenied(
            f"You may not run `{spec.name}`"
            + (f" on {', '.join(hosts)}" if hosts else "")
            + ". Ask a mailqbot admin for a role that grants it; `/mailq help` lists "
            "what you can run."
        )


async def refuse(request: Request, services: Services, name: str, exc: MailqbotError) -> Outcome:
    """Record a refusal a front end made itself (a button it handles outside the command
    registry, such as an alert's Acknowledge) exactly as a refused command is recorded: one
    ``command_runs`` row and one ``command.denied``/``command.refused`` event, with the same
    identity fields."""
    groups = await services.groups_of(request.user_id) if request.source == "slack" else None
    context = Context(services, request, Identity.of(request, groups or frozenset()))
    log_failure(request, None, _failure(exc), exc)
    return await record(context, None, time.time(), _failure(exc), render.error(exc), name)


async def record(
    context: Context,
    spec: CommandSpec[Any] | None,
    started: float,
    outcome: str,
    rendered: render.Rendered,
    name: str | None = None,
) -> Outcome:
    """Write the run and its audit event in one transaction. If that fails, a read's answer
    is withheld; a change that already ran on a host is reported as it happened, with the
    warning that its record is missing (its intent reads "outcome unknown")."""
    request = context.request
    try:
        name = spec.name if spec else name
        run = _run(request, name, spec, started, outcome, rendered)
        await runs.record(
            context.services.sessions, run, _audit_record(context, name, spec, outcome)
        )
    except Exception as exc:
        request_log(request).error("audit write failed (%s)", exc.__class__.__name__)
        context.services.metrics.audit_failures.inc()
        ran = context.changes_made()
        reply = render.audit_failed(request.request_id, ran, rendered if ran else None)
        return Outcome(False, reply, request.request_id)
    context.services.metrics.command_ran(run.command, outcome)
    return Outcome(outcome == "ok", rendered, request.request_id)


def _target(spec: CommandSpec[Any] | None, request: Request) -> str | None:
    if spec is None or not spec.host_args:
        return None
    words = request.text.split()
    return words[1][:255] if len(words) > 1 else None


def _run(
    request: Request,
    name: str | None,
    spec: CommandSpec[Any] | None,
    started: float,
    outcome: str,
    rendered: render.Rendered,
) -> runs.Run:
    return runs.Run(
        request_id=request.request_id,
        source=request.source,
        user_id=request.user_id,
        team_id=request.team_id,
        channel_id=request.channel_id,
        command=name or "(unparsed)",
        text=request.text[:2000],
        target=_target(spec, request),
        started_at=datetime.fromtimestamp(started, UTC),
        finished_at=datetime.now(UTC),
        outcome=outcome,
        error=None if outcome == "ok" else rendered.text[:2000],
    )


def _audit_record(
    context: Context, name: str | None, spec: CommandSpec[Any] | None, outcome: str
) -> audit.AuditRecord:
    request = context.request
    detail: dict[str, Any] = {
        "command": name,
        "text": request.text[:2000],
        "outcome": outcome,
        "channel_id": request.channel_id,
        "message_link": request.message_link,
        "replica": context.services.replica,
        "remote": context.remote_records(),
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


__all__ = ["Outcome", "Prepared", "execute", "handle", "prepare"]
