"""The import rules of DESIGN.md's target layout, checked on the source with ``ast``.

Every import in ``bot/`` and ``commands/`` counts, at module level or inside a function
(a lazy import is still a dependency); only imports under ``if TYPE_CHECKING:`` are left
out, as they never run. A rule names who may not import what; ``ALLOWED`` lists the few
exceptions left, each with why, and a test fails when one is no longer needed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (importer prefix, forbidden prefixes): "bot.postfix" covers the package and its modules.
RULES: list[tuple[str, tuple[str, ...]]] = [
    # Slack objects stay in bot/slack/
    ("bot", ("slack_bolt", "slack_sdk")),
    ("commands", ("slack_bolt", "slack_sdk", "bot.slack")),
    # SQL only in bot/db/ and bot/stores/
    ("bot", ("sqlalchemy",)),
    ("commands", ("sqlalchemy", "bot.db")),
    # one SSH executor: asyncssh only behind bot/remote/ (and the demo's SSH server)
    ("bot", ("asyncssh",)),
    ("commands", ("asyncssh", "bot.remote.ssh", "bot.app.pipeline", "bot.app.runtime")),
    # the remote gateway knows the request context, nothing above it
    ("bot.remote", ("bot.stores", "bot.db", "bot.app", "bot.actions", "bot.postfix",
                    "bot.render", "commands")),
    # Postfix knowledge is pure: no Slack, no SQL, no application layer
    ("bot.postfix", ("bot.stores", "bot.db", "bot.app", "bot.slack", "bot.render",
                     "commands", "bot.monitor", "bot.diag")),
    ("bot.diag", ("bot.app", "bot.slack", "commands")),
    ("bot.monitor", ("bot.app.pipeline", "commands")),
    ("bot.fleet", ("bot.app", "bot.slack", "commands")),
    ("bot.render", ("bot.stores", "bot.db", "bot.app", "bot.remote")),
    ("bot.stores", ("bot.app", "bot.slack", "bot.remote", "commands")),
]  # fmt: skip

# Who may break which rule, and why (each entry must still be needed).
ALLOWED: dict[tuple[str, str], str] = {
    ("bot.slack", "slack_bolt"): "the Slack front end",
    ("bot.slack", "slack_sdk"): "the Slack front end",
    ("bot.db", "sqlalchemy"): "the models and sessions",
    ("bot.stores", "sqlalchemy"): "the stores",
    ("bot.remote.ssh", "asyncssh"): "the one SSH executor",
    ("bot.remote.hostkeys", "asyncssh"): "hosts scan: fetching host keys, no login",
    ("bot.demo", "asyncssh"): "the demo hosts' in-process SSH server",
}


def modules() -> Iterator[tuple[str, Path]]:
    for package in ("bot", "commands"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, module: str) -> Iterator[str]:
    """Every module ``path`` imports when it runs (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skipped.update(id(child) for child in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def allowed(importer: str, imported: str) -> str | None:
    for (who, what), why in ALLOWED.items():
        if _under(importer, who) and _under(imported, what):
            return why
    return None


def violations() -> tuple[list[str], set[tuple[str, str]]]:
    found, used = [], set()
    for module, path in modules():
        for imported in set(imports(path, module)):
            for importer, forbidden in RULES:
                if not _under(module, importer):
                    continue
                for prefix in forbidden:
                    if not _under(imported, prefix):
                        continue
                    exception = next(
                        ((w, x) for (w, x) in ALLOWED if _under(module, w) and _under(imported, x)),
                        None,
                    )
                    if exception is not None:
                        used.add(exception)
                    else:
                        found.append(f"{module} imports {imported} ({importer} may not)")
    return sorted(set(found)), used


def test_every_import_follows_the_layout() -> None:
    found, _used = violations()
    assert found == []


def test_every_exception_is_still_needed() -> None:
    _found, used = violations()
    assert set(ALLOWED) - used == set()


def test_the_check_sees_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command importing sqlalchemy or the Slack SDK, even lazily, is found."""
    (tmp_path / "commands").mkdir()
    (tmp_path / "bot").mkdir()
    (tmp_path / "commands" / "bad.py").write_text(
        "def run():\n    import sqlalchemy\n    from slack_sdk import WebClient\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found, _ = violations()
    assert "commands.bad imports sqlalchemy (commands may not)" in found
    assert "commands.bad imports slack_sdk (commands may not)" in found
