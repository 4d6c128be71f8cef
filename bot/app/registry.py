"""The command contract: a command's spec, its typed arguments, and argument parsing.

A command module defines ``Args`` (a frozen dataclass), ``parse(ns) -> Args`` (the words,
checked once, before anything runs: a bad argument is a ``UsageError`` and no remote command
ever starts), ``async run(args, ctx) -> Model`` and ``SPEC = CommandSpec(...)`` naming its
template; ``commands.COMMANDS`` lists the modules in help order.

Host scope comes from the arguments' types: a ``HostArg`` names hosts, and the pipeline
checks the caller's permission on every host it names before anything runs. A command whose
hosts are not in its arguments gives ``scope`` (audit, plans: the hosts it reads about), or
checks them in ``run`` (approve: the plan's host); and every remote call goes through the
request's gateway, which refuses a host the caller may not use. A positional that looks like
a host (``HOST`` in its metavar) but is not a ``HostArg`` is refused at import.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar, cast

from bot.errors import UsageError
from bot.text import code

if TYPE_CHECKING:
    from bot.context import Context
    from bot.inventory import Inventory

Permission = Literal["read", "act", "approve", "admin"]
A = TypeVar("A")
Scope = Callable[[argparse.Namespace, "Inventory"], list[str]]


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

    def hosts(self, value: object, inventory: Inventory, spec: CommandSpec[Any]) -> list[str]:
        if value is None:
            return []
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
class CommandSpec(Generic[A]):
    name: str
    summary: str
    permission: Permission
    template: str
    examples: tuple[str, ...]
    # The words, parsed once into the command's ``Args`` (raising UsageError) before
    # anything runs; ``run`` receives them.
    parse: Callable[[argparse.Namespace], A]
    run: Callable[[A, Context], Awaitable[Any]]
    arguments: tuple[Argument, ...] = ()
    # The hosts a command reads about without reaching them (audit, plans), when they are
    # not in a ``HostArg``; the caller needs the permission on each.
    scope: Scope | None = None

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

    spec: CommandSpec[Any]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"`{self.spec.name}`: {message}.", usage=self.spec.usage)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"`{self.spec.name}`: bad arguments.", self.spec.usage)


def _parser_for(spec: CommandSpec[Any]) -> _Parser:
    parser = _Parser(prog=f"/mailq {spec.name}", add_help=False, exit_on_error=False)
    parser.spec = spec
    for arg in spec.arguments:
        parser.add_argument(
            arg.name, help=arg.help, metavar=arg.metavar, nargs=arg.nargs, choices=arg.choices
        )
    return parser


def parse_args(spec: CommandSpec[Any], words: list[str]) -> argparse.Namespace:
    try:
        return _parser_for(spec).parse_args(words)
    except argparse.ArgumentError as exc:  # exit_on_error=False raises instead of exiting
        raise UsageError(f"`{spec.name}`: {exc}.", usage=spec.usage) from None
