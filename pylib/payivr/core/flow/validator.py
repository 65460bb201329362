"""Reading a flow file: every problem at once, each with its path.

    flow = load_flow(Path("flows/zendesk-caller-aware.yaml"))   # FlowError(problems)

Beyond the shape of each activity (its own module reads it), the whole flow is
checked: every ``next``/option/case points at an activity, every variable read is
declared, built in or written somewhere, no secure variable is said, sent or written
where it could be seen, every fixed prompt has its text in the flow's language, the
after-hang-up handler needs no caller, every activity can be reached, and no loop
can spin without waiting for the caller or a service. With ``connectors`` /
``merchants`` (from the config) those references are checked too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from payivr.core.config import LANGUAGES
from payivr.core.configread import load_yaml_file
from payivr.core.flow.activities import KINDS
from payivr.core.flow.model import Activity, Flow, FlowReader, Refs, VariableSpec
from payivr.core.flow.variables import NAME, placeholders

FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PROMPT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ACTIVITY_ID = NAME
# Set by the engine for every call (docs/flows.md, "Variables").
BUILTIN_VARIABLES = frozenset(
    {"ani", "ani_digits", "dnis", "entry", "call_id", "flow", "language", "error", "error_activity",
     "ended_by"}
)  # fmt: skip
# Activities that never wait: a loop made only of these would never end.
NEVER_WAIT = frozenset({"say", "set", "condition", "switch", "comment"})
TOP_KEYS = {"flow", "description", "language", "variables", "prompts", "start", "activities",
            "handlers"}  # fmt: skip


class FlowError(Exception):
    """The flow has problems; ``problems`` lists every one with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _flow_name(value: str) -> bool:
    return bool(FLOW_NAME.match(value))


def load_flow(
    path: Path,
    *,
    connectors: Collection[str] | None = None,
    merchants: Collection[str] | None = None,
) -> Flow:
    """Read and validate a flow file; FlowError lists every problem."""
    data = load_yaml_file(path, FlowError)
    return parse_flow(data, connectors=connectors, merchants=merchants)


def parse_flow(
    data: object,
    *,
    connectors: Collection[str] | None = None,
    merchants: Collection[str] | None = None,
) -> Flow:
    """Validate an already-parsed flow document (see load_flow)."""
    if not isinstance(data, dict):
        raise FlowError(["(top): a flow must be a mapping"])
    problems: list[str] = []
    refs = Refs()
    root = FlowReader(data, "", problems, refs)
    name = root.get(
        "flow", str, "", check=lambda v: bool(FLOW_NAME.match(v)), what="a flow name ([a-z0-9_-])"
    )
    if not name:
        root.problem("flow", "required (the flow's name)")
    language = root.choice("language", LANGUAGES, "en")
    variables = _variables(root.section("variables"))
    refs.secure = frozenset(v.name for v in variables.values() if v.secure)
    prompts = _prompts(root.section("prompts"), language)
    activities = _activities(root.section("activities"))
    handlers = root.section("handlers")
    handlers.activity = "(handlers)"
    on_error = handlers.target("on_error")
    after_hangup = handlers.target("after_hangup")
    handlers.reject_unknown({"on_error", "after_hangup"})
    root.activity = "(start)"
    start = root.target("start", required=True) or ""
    root.reject_unknown(TOP_KEYS)

    _check_targets(refs, activities, problems)
    _check_variables(refs, variables, problems)
    _check_prompts(refs, prompts, problems)
    _check_known(refs.connectors, connectors, "connector", "services.connectors", problems)
    _check_known(refs.merchants, merchants, "merchant", "merchants", problems)
    if not problems:
        _check_graph(start, on_error, after_hangup, activities, refs, problems)
    if problems:
        raise FlowError(problems)
    return Flow(
        name=name,
        description=root.get("description", str, ""),
        language=language,
        start=start,
        variables=variables,
        prompts=prompts,
        activities=activities,
        on_error=on_error,
        after_hangup=after_hangup,
    )


def _variables(r: FlowReader) -> dict[str, VariableSpec]:
    out: dict[str, VariableSpec] = {}
    for name, value in r.items():
        if not NAME.match(name):
            r.problem(name, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            continue
        if name in BUILTIN_VARIABLES:
            r.problem(name, "is a built-in variable (set by payivr)")
            continue
        if value is None or isinstance(value, str | int | float):
            initial = "" if value is None else str(value)
            out[name] = VariableSpec(name, initial)
            continue
        v = r.section(name)
        out[name] = VariableSpec(
            name, str(v.get("value", str, "")), secure=v.get("secure", bool, False)
        )
        v.reject_unknown({"value", "secure"})
    return out


def _prompts(r: FlowReader, language: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, _ in r.items():
        if not PROMPT_NAME.match(name):
            r.problem(name, "a prompt name is [a-z0-9_-], up to 64 characters")
            continue
        texts = r.section(name)
        values = {}
        for lang, _ in texts.items():
            if lang not in LANGUAGES:
                texts.problem(lang, "a language payivr speaks: " + ", ".join(LANGUAGES))
                continue
            text = texts.get(lang, str, "")
            if not text.strip():
                texts.problem(lang, "the prompt's text (it is spoken to build the audio)")
            values[lang] = text
        if language not in values:
            r.problem(name, f"needs its text in the flow's language ({language})")
        out[name] = values
    return out


def _activities(r: FlowReader) -> dict[str, Activity]:
    out: dict[str, Activity] = {}
    if not r.keys():
        r.problem("", "at least one activity")
    for aid, raw in r.items():
        if not ACTIVITY_ID.match(aid):
            r.problem(aid, "an activity id is [A-Za-z_][A-Za-z0-9_]*")
            continue
        a = r.section(aid)
        a.activity = aid
        if not isinstance(raw, dict):
            continue
        kind = a.get("type", str, "")
        cls = KINDS.get(kind)
        if cls is None:
            a.problem("type", "one of " + ", ".join(sorted(KINDS)))
            continue
        nxt = a.target("next")
        on_error = a.target("on_error")
        out[aid] = cls.parse(aid, a, nxt, on_error)
        a.reject_unknown({"type", "next", "on_error", *cls.keys})
    return out


def _check_targets(refs: Refs, activities: Mapping[str, Activity], problems: list[str]) -> None:
    for path, _, target in refs.targets:
        if target not in activities:
            problems.append(f"{path}: no activity {target!r}")


def _check_variables(
    refs: Refs, variables: Mapping[str, VariableSpec], problems: list[str]
) -> None:
    known = BUILTIN_VARIABLES | set(variables) | set(refs.writes)
    for path, name, shown in refs.reads:
        if name not in known:
            problems.append(f"{path}: unknown variable {name!r} (declare it under variables)")
        elif shown and name in refs.secure:
            problems.append(
                f"{path}: secure variable {name!r} may not be said, sent or written here"
            )


def _check_prompts(
    refs: Refs, prompts: Mapping[str, Mapping[str, str]], problems: list[str]
) -> None:
    for path, name in refs.prompts:
        try:
            dynamic = bool(placeholders(name))
        except ValueError:
            continue  # reported where the template was read
        if name and not dynamic and name not in prompts:
            problems.append(f"{path}: no prompt {name!r} under prompts")


def _check_known(
    used: Iterable[tuple[str, str]],
    known: Collection[str] | None,
    what: str,
    where: str,
    problems: list[str],
) -> None:
    if known is None:
        return
    for path, name in used:
        if name not in known:
            problems.append(f"{path}: no {what} {name!r} in the config's {where}")


def _edges(refs: Refs) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for _, source, target in refs.targets:
        edges.setdefault(source, set()).add(target)
    return edges


def _reach(roots: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(edges.get(node, ()))
    return seen


def _check_graph(
    start: str,
    on_error: str | None,
    after_hangup: str | None,
    activities: Mapping[str, Activity],
    refs: Refs,
    problems: list[str],
) -> None:
    edges = _edges(refs)
    reached = _reach([start, on_error or "", after_hangup or ""], edges)
    for aid in activities:
        if aid not in reached:
            problems.append(f"activities.{aid}: never reached from start or a handler")
    if after_hangup:
        for aid in sorted(_reach([after_hangup], edges)):
            activity = activities[aid]
            if activity.media:
                problems.append(
                    f"activities.{aid}: a {activity.kind} needs the caller; it cannot run"
                    " after the hang-up (handlers.after_hangup reaches it)"
                )
    quick = {a for a, act in activities.items() if act.kind in NEVER_WAIT}
    loop = _cycle({a: edges.get(a, set()) & quick for a in quick})
    if loop:
        problems.append(
            "activities: " + " -> ".join(loop) + " loops without waiting for the caller"
        )


def _cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """One cycle of ``edges`` as a path, or [] (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(edges):
        if state.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(edges[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, set()))))
    return []
