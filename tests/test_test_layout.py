"""The tests' own layout (DESIGN.md: "tests/ mirrors the source; helpers/ is a package").

- A folder of tests is named after the source package it tests (``tests/postfix/`` for
  ``bot/postfix/``, ``tests/commands/`` for ``commands/``) or is one of the cross-cutting
  folders in ``CROSS_CUTTING``.
- Code the tests share lives in ``tests/helpers/``, one package, whose docstring lists every
  module: elsewhere there are only test modules, conftest.py files (fixtures) and the lab's
  own scripts (``tests/lab/``).
- No test module or conftest is imported as a library, and test file names are unique:
  pytest imports each test file by its bare name (its default "prepend" import mode).
"""

from __future__ import annotations

import ast
import importlib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Folders of tests that mirror no single package, and what they hold.
CROSS_CUTTING = {
    "bot": "the top-level modules of bot/ (cli.py, inventory.py, fleet.py, doctor.py, ...)",
    "e2e": "the bot against the real lab (tests marked lab)",
    "security": "the promises of SECURITY.md, across packages",
    "lab": "the lab itself: its scripts and config",
    "data": "captured output, corpora and schemas the tests read",
    "helpers": "what the tests share: a package, no tests",
    "bench": "the benchmarks of bench/ still run (tiny sizes, nothing timed)",
}
TOP_LEVEL_TESTS = {"test_layers.py", "test_test_layout.py"}  # about the whole tree


def python_files(tests: Path) -> list[Path]:
    return sorted(p for p in tests.rglob("*.py") if "__pycache__" not in p.parts)


def mirrors_the_source(root: Path, folder: tuple[str, ...]) -> bool:
    """``tests/a/b/`` mirrors ``bot/a/b/`` (a package), or it is ``tests/commands/``."""
    return folder == ("commands",) or (root / "bot" / Path(*folder) / "__init__.py").is_file()


def placement_problems(root: Path) -> list[str]:
    """Files of tests/ that are not where the layout says they go."""
    tests, problems = root / "tests", []
    for path in python_files(tests):
        rel = path.relative_to(tests)
        folder, name = rel.parts[:-1], rel.name
        if folder[:1] == ("helpers",):
            if name.startswith("test_"):
                problems.append(f"tests/{rel}: tests/helpers/ holds shared code, not tests")
        elif folder[:1] == ("lab",) or name == "conftest.py":
            continue
        elif not name.startswith("test_"):
            problems.append(f"tests/{rel}: shared test code belongs in tests/helpers/")
        elif not folder:
            if name not in TOP_LEVEL_TESTS:
                problems.append(f"tests/{rel}: put it in the folder of the package it tests")
        elif not (len(folder) == 1 and folder[0] in CROSS_CUTTING) and not mirrors_the_source(
            root, folder
        ):
            problems.append(
                f"tests/{rel}: tests/{'/'.join(folder)}/ mirrors no package of bot/ or commands/"
            )
    names = Counter(p.name for p in python_files(tests) if p.name.startswith("test_"))
    problems += [f"{n} is the name of {c} test files" for n, c in names.items() if c > 1]
    if not (tests / "helpers" / "__init__.py").is_file():
        problems.append("tests/helpers/ is not a package (no __init__.py)")
    return problems


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def import_problems(root: Path) -> list[str]:
    """Imports of a test module, a conftest or a test folder: what two tests share is a
    helper. (``bot`` and ``commands`` are the packages; ``helpers`` is tests/helpers/.)"""
    tests = root / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir()} - {"bot", "commands", "helpers"}
    problems = []
    for path in python_files(tests):
        for name in sorted(imported(path)):
            top = name.split(".")[0]
            if top == "conftest" or top.startswith("test_") or top in folders:
                rel = path.relative_to(tests)
                problems.append(f"tests/{rel} imports {name}: move what it shares to helpers/")
    return problems


def unlisted_helpers(root: Path) -> list[str]:
    """Modules of tests/helpers/ that its docstring does not name."""
    helpers = root / "tests" / "helpers"
    listed = ast.get_docstring(ast.parse((helpers / "__init__.py").read_text())) or ""
    names = {p.stem for p in helpers.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in helpers.iterdir() if (p / "__init__.py").is_file()}
    return sorted(n for n in names if n not in listed.split() and f"{n}/" not in listed.split())


def test_every_file_is_where_the_layout_says() -> None:
    assert placement_problems(ROOT) == []


def test_tests_share_code_only_through_helpers() -> None:
    assert import_problems(ROOT) == []


def test_the_helpers_docstring_lists_every_module() -> None:
    assert unlisted_helpers(ROOT) == []


def test_every_cross_cutting_folder_exists() -> None:
    assert sorted(n for n in CROSS_CUTTING if not (ROOT / "tests" / n).is_dir()) == []


@pytest.mark.parametrize("package", ["bot", "commands"])
def test_a_test_folder_never_stands_in_for_its_package(package: str) -> None:
    """tests/bot/ and tests/commands/ have no __init__.py; with tests/ on the import path,
    ``import bot`` must still find bot/ (pyproject puts the source tree on the path too)."""
    module = importlib.import_module(package)
    assert module.__file__ == str(ROOT / package / "__init__.py")


def test_the_checks_see_a_stray_helper(tmp_path: Path) -> None:
    """A helper left beside its tests, a folder that mirrors nothing, a test importing
    another test or a conftest, a twice-used test name and an unlisted helper are found."""
    for package in ("bot/postfix", "commands"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    files = {
        "tests/helpers/__init__.py": '"""fakes/   the fakes"""\n',
        "tests/helpers/fakes/__init__.py": "",
        "tests/helpers/samples.py": "",
        "tests/postfix/test_parse.py": "from conftest import LAB\nfrom test_render import ok\n",
        "tests/postfix/samples.py": "",
        "tests/postfix/conftest.py": "",
        "tests/mta/test_render.py": "from postfix.samples import x\n",
        "tests/commands/test_parse.py": "from helpers.samples import x\n",
        "tests/lab/fill.py": "",
        "tests/test_stray.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert placement_problems(tmp_path) == [
        "tests/mta/test_render.py: tests/mta/ mirrors no package of bot/ or commands/",
        "tests/postfix/samples.py: shared test code belongs in tests/helpers/",
        "tests/test_stray.py: put it in the folder of the package it tests",
        "test_parse.py is the name of 2 test files",
    ]
    assert import_problems(tmp_path) == [
        "tests/mta/test_render.py imports postfix.samples: move what it shares to helpers/",
        "tests/postfix/test_parse.py imports conftest: move what it shares to helpers/",
        "tests/postfix/test_parse.py imports test_render: move what it shares to helpers/",
    ]
    assert unlisted_helpers(tmp_path) == ["samples"]
