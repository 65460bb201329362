"""A flow call's variables: values by name, some marked ``secure``.

A secure value (a PIN the caller keyed, a token a lookup returned) is never logged,
never put in an event and never written into a comment: the validator refuses a
template that would put one there, and ``Variables.public()`` leaves them out.

Templates are strings with ``{name}`` placeholders (``{{`` and ``}}`` for literal
braces). ``language`` is special: whatever is assigned to it is reduced to a language
payivr speaks (``es-ES`` -> ``es``), and an unsupported one leaves it unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from payivr.core.config import LANGUAGES

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LANGUAGE = "language"


class TemplateError(ValueError):
    """A template with a stray brace (the validator reports it with its path)."""


def placeholders(template: str) -> list[str]:
    """The variable names a template reads, in order; TemplateError if malformed."""
    names = [m.group(1) for m in PLACEHOLDER.finditer(template) if m.group(1)]
    rest = PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise TemplateError("unbalanced brace (write {{ or }} for a literal one)")
    return names


def spoken_language(value: str, current: str) -> str:
    """``es-ES`` / ``pt_BR`` / ``NL`` -> the payivr language; else ``current``."""
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else current


class Variables:
    """Values of one flow call (strings); names in ``secure`` are never shown."""

    def __init__(self, values: Mapping[str, str], secure: Iterable[str] = ()) -> None:
        self._values = dict(values)
        self.secure = frozenset(secure)

    def get(self, name: str) -> str:
        return self._values.get(name, "")

    def set(self, name: str, value: str) -> None:
        if name == LANGUAGE:
            value = spoken_language(value, self.get(LANGUAGE))
        self._values[name] = value

    def render(self, template: str) -> str:
        """The template with each ``{name}`` replaced by its value ("" if unset)."""

        def one(match: re.Match[str]) -> str:
            if match.group(0) == "{{":
                return "{"
            if match.group(0) == "}}":
                return "}"
            return self.get(match.group(1))

        return PLACEHOLDER.sub(one, template)

    def public(self) -> dict[str, str]:
        """Every value that may be shown (secure ones left out)."""
        return {k: v for k, v in self._values.items() if k not in self.secure}

    def wipe(self) -> None:
        """Forget the secure values (the call is over)."""
        for name in self.secure:
            if name in self._values:
                self._values[name] = ""

    def __repr__(self) -> str:
        return f"<Variables {sorted(self._values)} secure={sorted(self.secure)}>"
