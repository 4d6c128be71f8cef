"""The documentation holds together: every relative link and anchor in the Markdown files
leads somewhere, every document the code or tests name exists, the troubleshooting page
quotes only sentences the bot still says, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "tests" / "lab" / "README.md"]
DOCS = sorted([*READMES, *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(path: Path) -> str:
    """The file without its fenced code blocks (their brackets are not links)."""
    kept, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in prose(path).splitlines():
        if heading := re.match(r"^#{1,6}\s+(.*)$", line):
            text = heading.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def links() -> list[tuple[Path, str]]:
    return [(doc, target) for doc in DOCS for target in LINK.findall(prose(doc))]


def test_the_documents_exist() -> None:
    expected = ["docs/ops", "docs/dev", "docs/commands"]
    assert all((ROOT / folder).is_dir() for folder in expected)
    assert len(links()) > 50  # the link check below looks at real links


@pytest.mark.parametrize(
    ("doc", "target"),
    [pytest.param(d, t, id=f"{d.relative_to(ROOT)}->{t}") for d, t in links()
     if not re.match(r"^(https?|mailto):", t)],
)  # fmt: skip
def test_every_relative_link_leads_somewhere(doc: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    destination = (doc.parent / path).resolve() if path else doc
    assert destination.exists(), f"{doc.relative_to(ROOT)} links to missing {path}"
    if anchor and destination.suffix == ".md":
        assert anchor in anchors(destination), f"no heading #{anchor} in {path or doc.name}"


def named_documents() -> set[str]:
    """Paths of documents named in the code and tests (``docs/...md``, ``deploy/...``)."""
    named = set()
    sources = [*ROOT.glob("bot/**/*.py"), *ROOT.glob("bot/**/*.j2"), *ROOT.glob("commands/*.py")]
    sources += [p for p in ROOT.glob("tests/**/*.py") if p.name != "test_docs.py"]
    for source in sources:
        named.update(re.findall(r"(?<![\w/.:-])((?:docs|deploy)/[\w./-]*\w)", source.read_text()))
    return named


def test_every_document_the_code_names_exists() -> None:
    named = named_documents()
    assert "docs/commands/log.md" in named  # the log reader's sudo hint points there
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"named but missing: {missing}"


def quoted_sentences() -> list[str]:
    page = (ROOT / "docs" / "ops" / "troubleshooting.md").read_text()
    return [line[2:].strip() for line in page.splitlines() if line.startswith("> ")]


def test_troubleshooting_quotes_only_what_the_bot_says() -> None:
    sentences = quoted_sentences()
    assert len(sentences) >= 15
    code = "\n".join(
        p.read_text()
        for pattern in ("bot/**/*.py", "bot/**/*.j2", "commands/*.py")
        for p in ROOT.glob(pattern)
    )
    gone = [s for s in sentences if s not in code]
    assert not gone, f"the bot no longer says: {gone}"


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = {t.split("#")[0] for t in LINK.findall(readme)}
    for page in ("docs/ops/install.md", "docs/ops/troubleshooting.md", "docs/dev/architecture.md"):
        assert page in linked, f"README does not link {page}"


# Paths the docs name on purpose although they are not in the repository.
NOT_IN_THE_REPOSITORY = {
    "bench/results/": "benchmark outputs, git-ignored",
    "commands/senders.py": "the walkthrough's own new command",
    "bot/render/templates/senders.blocks.j2": "the walkthrough's own new command",
    "bot/render/templates/senders.txt.j2": "the walkthrough's own new command",
    "bot/exim/": "a second MTA, described, not built",
    "bot/reasons.py": "where the classifier would move with a second MTA",
}


def test_every_path_the_docs_name_exists() -> None:
    """A file or folder of the repository named in the docs (`bot/postfix/reasons.py`)
    exists: code moves, and a page that names the old place misleads."""
    pattern = re.compile(
        r"`((?:bot|commands|tests|bench|deploy|scripts|migrations|docs)/[\w./-]*\w/?)`"
    )
    named = {(doc, path) for doc in DOCS for path in pattern.findall(doc.read_text())}
    missing = sorted(f"{doc.relative_to(ROOT)}: {path}" for doc, path in named
                     if path not in NOT_IN_THE_REPOSITORY
                     and not any(ROOT.glob(path.rstrip("/"))))  # fmt: skip
    assert not missing, "\n".join(missing)
