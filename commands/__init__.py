"""The command registry: every ``/mailq`` subcommand, its arguments and its permission.

A command module defines ``SPEC`` (a ``CommandSpec``) and an ``async run(args, ctx)`` that
returns a model for its template. Commands never touch Slack; help is built from here.
A model whose ``private`` attribute is true (``show ... body``) is shown only to the person
who asked, by every front end (``render.Rendered.private``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.pipeline import Context

Permission = Literal["read", "act", "approve", "admin"]
Runner = Callable[[argparse.Namespace, "Context"], Awaitable[Any]]


@dataclass(frozen=True)
class Argument:
    name: str
    help: str
    metavar: str | None = None
    nargs: str | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    permission: Permission
    template: str
    examples: tuple[str, ...]
    run: Runner
    arguments: tuple[Argument, ...] = ()
    targets_hosts: bool = field(default=False)
    order: int = 50  # position in help
    # Checks the arguments before anything runs (raising UsageError), so a bad argument is
    # refused at once: no placeholder message, no remote command.
    validate: Callable[[argparse.Namespace], object] | None = None

    @property
    def usage(self) -> str:
        parts = [a.metavar or a.name.upper() for a in self.arguments]
        return " ".join(["/mailq", self.name, *parts])


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of printing and exiting."""

    spec: CommandSpec

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"`{self.spec.name}`: {message}.", usage=self.spec.usage)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"`{self.spec.name}`: bad arguments.", self.spec.usage)


def _parser_for(spec: CommandSpec) -> _Parser:
    parser = _Parser(prog=f"/mailq {spec.name}", add_help=False, exit_on_error=False)
    parser.spec = spec
    for arg in spec.arguments:
        parser.add_argument(
            arg.name, help=arg.help, metavar=arg.metavar, nargs=arg.nargs, choices=arg.choices
        )
    return parser


@cache
def all_specs() -> list[CommandSpec]:
    """Every module in this package that defines ``SPEC``, in ``order`` (help last)."""
    specs = []
    for module in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SPEC", None)
        if isinstance(spec, CommandSpec):
            specs.append(spec)
    return sorted(specs, key=lambda s: (s.order, s.name))


def registry() -> dict[str, CommandSpec]:
    return {spec.name: spec for spec in all_specs()}


def parse(text: str) -> tuple[CommandSpec, argparse.Namespace]:
    """Split ``text`` like a shell would (no expansion) and parse it against the registry."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"Could not split the command: {exc}. Check your quotes.") from None
    specs = registry()
    if not words:
        words = ["help"]
    name, rest = words[0].lower(), words[1:]
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(f"`{n}`" for n in specs)
        raise UsageError(f"Unknown command `{name}`. Commands: {known}. Try `/mailq help`.")
    return spec, parse_args(spec, rest)


def parse_args(spec: CommandSpec, words: list[str]) -> argparse.Namespace:
    try:
        return _parser_for(spec).parse_args(words)
    except argparse.ArgumentError as exc:  # exit_on_error=False raises instead of exiting
        raise UsageError(f"`{spec.name}`: {exc}.", usage=spec.usage) from None
