"""The command registry: every bad argument is a usage error, never a crash."""

from __future__ import annotations

import argparse

import pytest

import commands
from bot.errors import UsageError
from commands import Argument, CommandSpec, HostArg


async def _never(_args: argparse.Namespace, _ctx: object) -> None:
    raise AssertionError("not run")


SPEC = CommandSpec(
    name="demo",
    summary="",
    permission="read",
    template="demo",
    examples=(),
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
