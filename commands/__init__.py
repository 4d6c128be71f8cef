"""The command registry: every ``/mailq`` subcommand, its arguments and its permission.

A command module defines ``SPEC`` (a ``CommandSpec``) and an ``async run(args, ctx)`` that
returns a model for its template; ``COMMANDS`` lists the modules in help order. Commands
never touch Slack; help is built from here. A model whose ``private`` attribute is true
(``show ... body``) is shown only to the person who asked, by every front end
(``render.Rendered.private``).

Host scope comes from the arguments' types: a ``HostArg`` names hosts, and the pipeline
checks the caller's permission on every host it names before anything runs. A command whose
hosts are not in its arguments gives ``scope`` (audit, plans: the hosts it reads about), or
checks them in ``run`` (approve: the plan's host); and every remote call goes through the
request's gateway, which refuses a host the caller may not use. A positional that looks like
a host (``HOST`` in its metavar) but is not a ``HostArg`` is refused at import.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

from bot.errors import UsageError
from bot.text import code

if TYPE_CHECKING:
    from bot.context import Context
    from bot.inventory import Inventory

Permission = Literal["read", "act", "approve", "admin"]
Runner = Callable[[argparse.Namespace, "Context"], Awaitable[Any]]
Scope = Callable[[argparse.Namespace, "Inventory"], list[str]]
# The command modules, in help order.
COMMANDS = (
    "summary", "show", "diagnose", "list", "log", "flush", "requeue", "hold", "release",
    "purge", "approve", "deny", "plans", "audit", "help",
)  # fmt: skip


@dataclass(frozen=True)
class Argument:
    name: str
    help: str
    metavar: str | None = None
    nargs: str | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HostArg(Argument):
    """An argument that names hosts: one inventory host, or (``groups``) also a host group
    or ``all``. The pipeline authorises the caller on every host it names."""

    groups: bool = False

    def hosts(self, value: object, inventory: Inventory, spec: CommandSpec) -> list[str]:
        if value is None:
            return []
        # (``list`` here would be the ``commands.list`` module: name the str case instead)
        names: Sequence[object] = (
            [value] if isinstance(value, str) else cast(Sequence[object], value)
        )
        if self.groups:
            return [h.name for name in names for h in inventory.select(str(name))]
        for name in names:
            if name == "all" or name in inventory.groups:
                raise UsageError(
                    f"`{spec.name}` works on one host at a time; `{code(str(name))[:60]}` is a "
                    f"group. Name one host: {', '.join(inventory.names)}.",
                    spec.usage,
                )
        return [inventory.get(str(name)).name for name in names]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    permission: Permission
    template: str
    examples: tuple[str, ...]
    run: Runner
    arguments: tuple[Argument, ...] = ()
    # The hosts a command reads about without reaching them (audit, plans), when they are
    # not in a ``HostArg``; the caller needs the permission on each.
    scope: Scope | None = None
    # Checks the arguments before anything runs (raising UsageError), so a bad argument is
    # refused at once: no placeholder message, no remote command.
    validate: Callable[[argparse.Namespace], object] | None = None

    def __post_init__(self) -> None:
        for arg in self.arguments:
            if "HOST" in (arg.metavar or "") and not isinstance(arg, HostArg) and not self.scope:
                raise ValueError(
                    f"/mailq {self.name}: argument {arg.name!r} names a host but is not a "
                    "HostArg and the command gives no scope: its hosts would go unchecked"
                )
        if self.host_args and self.scope is not None:
            raise ValueError(f"/mailq {self.name}: give host arguments or a scope, not both")

    @property
    def host_args(self) -> tuple[HostArg, ...]:
        return tuple(a for a in self.arguments if isinstance(a, HostArg))

    def hosts(self, args: argparse.Namespace, inventory: Inventory) -> list[str]:
        """Every host the arguments name (the caller is authorised on each)."""
        if self.scope is not None:
            return self.scope(args, inventory)
        names: list[str] = []
        for arg in self.host_args:
            names += arg.hosts(getattr(args, arg.name, None), inventory, self)
        return names

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
    """The ``SPEC`` of every module in ``COMMANDS``, in that order."""
    specs = []
    for name in COMMANDS:
        spec = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
        if not isinstance(spec, CommandSpec) or spec.name != name:
            raise TypeError(f"commands.{name} must define SPEC, a CommandSpec named {name!r}")
        specs.append(spec)
    return specs


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
