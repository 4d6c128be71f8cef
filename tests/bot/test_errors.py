"""The exception tree drawn in bot/errors.py's docstring is the tree of its classes, and
every mailqbot error lives there (one exception tree)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import bot
import commands
from bot import errors

ROOT = Path(__file__).resolve().parents[2]


def drawn_tree() -> dict[str, str]:
    """Each class the docstring draws, with its parent (by indentation)."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        # "    MailqbotError" or "    │   ├── Name   what it means": the drawing's rows
        found = re.match(r"    ((?:[│ ]   )*(?:[├└]── )?)([A-Z]\w+)(?:\s|$)", line)
        if not found:
            continue
        depth = len(found[1])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found[2]] = stack[-1][1] if stack else "Exception"
        stack.append((depth, found[2]))
    return parents


def test_the_docstring_draws_the_class_tree() -> None:
    actual = {
        name: cls.__bases__[0].__name__
        for name, cls in vars(errors).items()
        if isinstance(cls, type)
        and issubclass(cls, Exception)
        and cls.__module__ == errors.__name__
    }
    assert drawn_tree() == actual


def test_no_mailqbot_error_is_defined_outside_bot_errors() -> None:
    """Subclasses of the tree's classes live only in bot/errors.py."""
    names = set(drawn_tree())
    outside = []
    for package in (bot, commands):
        for path in Path(package.__path__[0]).rglob("*.py"):
            if path.name == "errors.py" and path.parent.name == "bot":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id in names for b in node.bases
                ):
                    outside.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert outside == []
