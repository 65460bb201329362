"""The pieces a flow is made of: activities, the steps they take, the flow itself.

An activity is one module in ``activities/`` (a frozen dataclass with ``parse``,
``begin`` and, for one that waits for the call, ``answer``). ``begin`` and ``answer``
return a ``Step``: the commands for the driver, then either the event types the
activity waits for, or where the flow goes next (``goto``), or an error kind (the
flow goes to the activity's ``on_error``, else the flow's on-error handler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from payivr.core.configread import Reader
from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import FlowCommand
from payivr.core.flow.jsonpath import JsonPathError, parse_path
from payivr.core.flow.jsonpath import Step as PathStep
from payivr.core.flow.variables import NAME, TemplateError, Variables, placeholders


@dataclass(frozen=True)
class Step:
    commands: tuple[FlowCommand, ...] = ()
    goto: str | None = None
    waits: tuple[type, ...] = ()
    outcome: str = "done"  # for the activity.done event: a verdict, never a value
    error: str | None = None
    ends_call: bool = False  # the caller's part is over (hang-up, transfer)
    # Events of the activity itself (queue.entered ...), published before commands.
    events: tuple[tuple[str, Mapping[str, str]], ...] = ()


@dataclass
class Env:
    """What an activity reads and writes while the flow runs."""

    flow: str
    vars: Variables
    prompts: Mapping[str, Mapping[str, str]]  # prompt name -> language -> text
    default_language: str
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def language(self) -> str:
        return self.vars.get("language") or self.default_language

    def prompt_language(self, name: str) -> str:
        """The call's language if the prompt has it, else the flow's default."""
        texts = self.prompts.get(name, {})
        return self.language if self.language in texts else self.default_language


@dataclass(frozen=True)
class Activity:
    """Common to every activity: its id and where it goes next or on error."""

    kind: ClassVar[str]
    # Needs the caller on the line: not allowed in the after-hang-up handler.
    media: ClassVar[bool] = False

    id: str
    next: str | None
    on_error: str | None

    def begin(self, env: Env) -> Step:
        raise NotImplementedError

    def answer(self, event: Any, env: Env) -> Step:
        raise IllegalTransition(f"activity {self.id} ({self.kind}) waits for nothing")


@dataclass
class Refs:
    """What the activities read, write and point to; checked once all are parsed."""

    reads: list[tuple[str, str, bool]] = field(default_factory=list)  # path, name, shown
    writes: dict[str, str] = field(default_factory=dict)  # name -> first path writing it
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # path, from, to
    prompts: list[tuple[str, str]] = field(default_factory=list)  # path, prompt template
    connectors: list[tuple[str, str]] = field(default_factory=list)
    merchants: list[tuple[str, str]] = field(default_factory=list)
    secure: frozenset[str] = frozenset()  # the flow's secure variables (read first)


class FlowReader(Reader):
    """A Reader that also records templates, targets and variables (``Refs``)."""

    def __init__(
        self, data: object, path: str, problems: list[str], refs: Refs, activity: str = ""
    ) -> None:
        super().__init__(data, path, problems)
        self.refs = refs
        self.activity = activity

    def section(self, key: str) -> FlowReader:
        base = super().section(key)
        return FlowReader(base.data, base.path, self.problems, self.refs, self.activity)

    def item(self, key: str, index: int, value: object) -> FlowReader:
        return FlowReader(
            value, f"{self.path_of(key)}[{index}]", self.problems, self.refs, self.activity
        )

    def check_template(self, key: str, text: str, *, shown: bool) -> str:
        """Record a template's variables; ``shown``: it is said, written or sent to
        someone (no secure variable may appear in it)."""
        try:
            names = placeholders(text)
        except TemplateError as exc:
            self.problem(key, str(exc))
            return text
        for name in names:
            self.refs.reads.append((self.path_of(key), name, shown))
        return text

    def template(self, key: str, *, shown: bool, required: bool = False, default: str = "") -> str:
        if required and not self.has(key):
            self.problem(key, "required")
            return default
        value = self.data.get(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # a YAML number where text was meant: 2 -> "2"
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        return self.check_template(key, value, shown=shown)

    def target(self, key: str, *, required: bool = False) -> str | None:
        if not self.has(key):
            if required:
                self.problem(key, "required (the id of the activity to go to)")
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.problem(key, "must be an activity id")
            return None
        self.refs.targets.append((self.path_of(key), self.activity, value))
        return value

    def target_value(self, key: str, value: object) -> str | None:
        """A target found as a value in a mapping (a menu option, a switch case)."""
        if not isinstance(value, str):
            self.problem(key, "must be an activity id")
            return None
        self.refs.targets.append((self.path_of(key), self.activity, value))
        return value

    def variable(self, key: str, *, required: bool = False) -> str | None:
        """The name of a variable this activity writes."""
        if not self.has(key):
            if required:
                self.problem(key, "required (a variable name)")
            return None
        value = self.data[key]
        if not isinstance(value, str) or not NAME.match(value):
            self.problem(key, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            return None
        self.written(key, value)
        return value

    def written(self, key: str, name: str) -> None:
        self.refs.writes.setdefault(name, self.path_of(key))

    def json_path(self, key: str, value: object) -> tuple[PathStep, ...]:
        if not isinstance(value, str):
            self.problem(key, "must be a JSON path like $.users[0].id")
            return ()
        try:
            return parse_path(value)
        except JsonPathError as exc:
            self.problem(key, str(exc))
            return ()

    def bounded_int(self, key: str, default: int, low: int, high: int) -> int:
        return self.get(
            key,
            int,
            default,
            check=lambda v: low <= v <= high,
            what=f"an integer from {low} to {high}",
        )


@dataclass(frozen=True)
class VariableSpec:
    name: str
    initial: str = ""
    secure: bool = False


@dataclass(frozen=True)
class Flow:
    """A validated flow: every target exists, every variable read is known."""

    name: str
    description: str
    language: str
    start: str
    variables: Mapping[str, VariableSpec]
    prompts: Mapping[str, Mapping[str, str]]
    activities: Mapping[str, Activity]
    on_error: str | None
    after_hangup: str | None

    def connectors(self) -> frozenset[str]:
        return frozenset(
            str(a.connector) for a in self.activities.values() if hasattr(a, "connector")
        )

    def merchants(self) -> frozenset[str]:
        return frozenset(
            str(a.merchant) for a in self.activities.values() if hasattr(a, "merchant")
        )
