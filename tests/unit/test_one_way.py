"""One name for one thing, one place for one job: checked over the package's source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PYLIB = Path(__file__).resolve().parents[2] / "pylib" / "payivr"


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PYLIB).as_posix(), ast.parse(path.read_text()))
        for path in sorted(PYLIB.rglob("*.py"))
    ]


def test_outcome_is_only_the_payment_outcome() -> None:
    classes = {
        (where, node.name)
        for where, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name.endswith("Outcome")
    }
    assert classes == {("core/result.py", "Outcome")}


def test_sip_uris_are_parsed_in_one_place() -> None:
    # A regex or a prefix test on the URI scheme anywhere else is a second parser.
    # agent/dialplan.py writes a FreeSWITCH dialplan condition: FreeSWITCH runs it.
    scheme = re.compile(r"sips\?|\^sip|^sips?:$")
    elsewhere = {
        where
        for where, tree in _modules()
        if where not in ("core/siputil.py", "agent/dialplan.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and scheme.search(node.value)
    }
    assert elsewhere == set()
