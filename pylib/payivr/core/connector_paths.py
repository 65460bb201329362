"""JSON outputs to variables by path: `users[0].id`, `tickets[0].status`, `meta.has_more`.

The grammar is deliberately small: names joined by dots, list indexes in brackets
(negative counts from the end). A path is parsed once (flow files are checked before
a call arrives) and applied to each response; a missing step raises PathMissing naming
the step that was not there, never the document (it may hold personal data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]")


class PathSyntaxError(ValueError):
    """The path is not `name(.name|[index])*`."""


class PathMissing(LookupError):
    """The document has nothing at the path; `path` is the full path, `at` the part found."""

    def __init__(self, path: str, at: str, why: str) -> None:
        super().__init__(f"{path}: {why} at {at or '(top)'}")
        self.path = path
        self.at = at
        self.why = why


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[str | int, ...]

    def find(self, document: object) -> object:
        """The value at this path; PathMissing if any step is absent."""
        value = document
        done = ""
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list):
                    raise PathMissing(self.text, done, "not a list")
                if not -len(value) <= step < len(value):
                    raise PathMissing(self.text, done, f"no item [{step}] (list of {len(value)})")
                value = value[step]
                done += f"[{step}]"
            else:
                if not isinstance(value, dict):
                    raise PathMissing(self.text, done, "not an object")
                if step not in value:
                    raise PathMissing(self.text, done, f"no key {step!r}")
                value = value[step]
                done += f".{step}" if done else step
        return value


def parse_path(text: str) -> JsonPath:
    """Parse `users[0].id`; PathSyntaxError says where it goes wrong."""
    steps: list[str | int] = []
    pos = 0
    if not text:
        raise PathSyntaxError("empty path")
    while pos < len(text):
        if steps and text[pos] == ".":
            pos += 1
            m = _STEP.match(text, pos)
            if m is None or m.group(1) is None:
                raise PathSyntaxError(f"{text!r}: expected a name at position {pos}")
        else:
            m = _STEP.match(text, pos)
            if m is None or (not steps and m.group(1) is None):
                raise PathSyntaxError(f"{text!r}: expected a name at position {pos}")
            if steps and m.group(1) is not None:
                raise PathSyntaxError(f"{text!r}: expected '.' or '[' at position {pos}")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return JsonPath(text, tuple(steps))


def map_outputs(document: object, outputs: Mapping[str, JsonPath]) -> dict[str, object]:
    """{variable: value at its path}; PathMissing for the first path that is absent."""
    return {name: path.find(document) for name, path in outputs.items()}
