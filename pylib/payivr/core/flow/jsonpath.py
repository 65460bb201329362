"""The small JSON path an ``http`` activity maps a response with: ``$.users[0].id``.

``$`` is the document; ``.name`` a member of an object; ``[n]`` an element of a list
(``[-1]`` the last); ``[?name=a|b]`` the elements of a list that are objects whose
``name`` is one of the values (``$.tickets[?status=new|open|pending|hold][0].id``: the
first ticket not yet solved). What the path reaches becomes a variable's text: a string as it
is, a number in decimal, ``true``/``false``; a missing member, an index out of range,
``null``, an object or a list give "" (the flow tests for it with a ``condition``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STEP = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]|\[\?([A-Za-z_][A-Za-z0-9_-]*)=([^\]]*)\]"
)


@dataclass(frozen=True)
class Filter:
    """``[?name=a|b]``: keep the list's objects whose ``name`` is one of ``values``."""

    name: str
    values: frozenset[str]


Step = str | int | Filter


class JsonPathError(ValueError):
    """Not a path this module reads (reported by the validator with its place)."""


def parse_path(path: str) -> tuple[Step, ...]:
    """``$.users[0].id`` -> ("users", 0, "id")."""
    if not path.startswith("$"):
        raise JsonPathError("must start with $ (e.g. $.users[0].id)")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        match = STEP.match(path, pos)
        if match is None:
            raise JsonPathError(
                f"cannot read {path[pos:]!r}: use .name, [index] or [?name=value|value] steps"
            )
        if match.group(1) is not None:
            steps.append(match.group(1))
        elif match.group(2) is not None:
            steps.append(int(match.group(2)))
        else:
            steps.append(Filter(match.group(3), frozenset(match.group(4).split("|"))))
        pos = match.end()
    return tuple(steps)


def extract(document: object, steps: tuple[Step, ...]) -> str:
    """The text at ``steps`` in ``document`` ("" when nothing usable is there)."""
    node = document
    for step in steps:
        if isinstance(step, Filter):
            if not isinstance(node, list):
                return ""
            node = [
                item
                for item in node
                if isinstance(item, dict) and _text(item.get(step.name)) in step.values
            ]
        elif isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return ""
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return ""
            node = node[step]
    return _text(node)


def _text(node: object) -> str:
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int | float | str):
        return str(node)
    return ""
