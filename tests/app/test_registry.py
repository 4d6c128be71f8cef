"""The command registry: every bad argument is a usage error, never a crash."""

from __future__ import annotations

import argparse
import importlib

import pytest

import commands
from bot import render
from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import UsageError


async def _never(_args: argparse.Namespace, _ctx: object) -> None:
    raise AssertionError("not run")


SPEC = CommandSpec(
    name="demo",
    summary="",
    permission="read",
    template="demo",
    examples=(),
    parse=lambda ns: ns,
    run=_never,  # type: ignore[arg-type]
    arguments=(
        HostArg("target", help="host", metavar="HOST"),
        Argument("mode", help="", choices=("a", "b")),
    ),
)


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["mx1", "c"], "invalid choice: 'c'"),
        (["mx1"], "required: mode"),
        (["mx1", "a", "extra"], "unrecognized arguments: extra"),
        (["-h"], "required: HOST, mode"),
    ],
)
def test_bad_arguments_are_usage_errors(words: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        commands.parse_args(SPEC, words)
    assert caught.value.usage == "/mailq demo HOST MODE"


def test_every_command_is_registered_with_examples() -> None:
    specs = commands.all_specs()
    assert specs[-1].name == "help"
    for spec in specs:
        assert spec.examples, f"{spec.name} has no examples for help"
        assert all(example.startswith(f"/mailq {spec.name}") for example in spec.examples)


def test_empty_text_is_help() -> None:
    spec, _ = commands.parse("")
    assert spec.name == "help"


def test_every_command_has_both_templates_and_typed_args() -> None:
    templates = render.TEMPLATES
    for spec in commands.all_specs():
        for kind in ("blocks", "txt"):
            assert (templates / f"{spec.template}.{kind}.j2").exists(), (spec.name, kind)
        module = importlib.import_module(spec.run.__module__)
        assert spec.parse.__module__ == module.__name__, spec.name


def test_help_lists_commands_in_the_registry_order() -> None:
    assert [spec.name for spec in commands.all_specs()] == list(commands.COMMANDS)
    assert commands.COMMANDS[-1] == "help"


def test_every_command_that_names_hosts_is_scoped() -> None:
    """A command either names its hosts in HostArgs, or gives a scope, or names none; the
    ones that reach hosts are exactly the ones with host arguments (approve reaches the
    plan's host and checks it in run: tests/security/test_scope.py)."""
    reaching = {s.name for s in commands.all_specs() if s.host_args}
    assert reaching == {
        "summary", "show", "diagnose", "list", "log", "flush", "requeue", "hold", "release",
        "purge",
    }  # fmt: skip
    assert {s.name for s in commands.all_specs() if s.scope} == {"plans", "audit", "silence"}
