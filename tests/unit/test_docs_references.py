"""Pointers to documents must lead somewhere: every `docs/<name>.md` named in the
code, the docs, the config examples and the tests exists (the reasons table:
tests/unit/test_reasons.py)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEARCHED = ("pylib", "kamailio", "tests", "bench", "docs", "config", "ansible", "dialplans")
DOC_REF = re.compile(r"\bdocs/[A-Za-z0-9_./-]+\.md\b")


def _texts() -> list[tuple[Path, str]]:
    found = [(REPO / "README.md", (REPO / "README.md").read_text())]
    for top in SEARCHED:
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix in {".py", ".md", ".yaml", ".yml", ".cfg", ".xml", ".j2"}:
                found.append((path, path.read_text(errors="replace")))
    return found


def test_every_docs_reference_exists() -> None:
    missing = {
        f"{path.relative_to(REPO)}: {ref}"
        for path, text in _texts()
        for ref in DOC_REF.findall(text)
        if not (REPO / ref).is_file()
    }
    assert sorted(missing) == []
