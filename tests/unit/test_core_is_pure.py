"""The core imports no I/O library: the DESIGN's first rule, checked on every run."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "pylib" / "payivr" / "core"
FORBIDDEN = {
    "socket",
    "redis",
    "requests",
    "http",
    "urllib3",
    "asyncio",
    "ESL",
    "KSR",
    "greenswitch",
    "subprocess",
    "ssl",
    "selectors",
    "threading",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("payivr.") and not node.module.startswith("payivr.core"):
                roots.add(node.module)
    return roots


def test_core_modules_import_no_io() -> None:
    offenders = {}
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        bad = {r for r in imported_roots(path) if r in FORBIDDEN or r.startswith("payivr.")}
        if bad:
            offenders[str(path.relative_to(CORE))] = sorted(bad)
    assert offenders == {}
