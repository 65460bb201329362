"""The flow validator: every problem at once with its path; properties by hypothesis."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payivr.core.flow import FlowEngine, FlowError, load_flow, parse_flow
from payivr.core.flow.commands import CollectKeys, HttpRequest
from payivr.core.flow.engine import CallInfo
from payivr.core.flow.events import HttpAnswered, KeysEntered
from tests.unit.flow_support import reference_data

PROBLEM = re.compile(r"^[^\s:][^:]*: .+")


def problems_of(data: object, **known: Any) -> list[str]:
    with pytest.raises(FlowError) as info:
        parse_flow(data, **known)
    return info.value.problems


def test_reference_flow_is_valid_with_the_config_it_needs() -> None:
    flow = parse_flow(reference_data(), connectors={"zendesk"}, merchants={"acme"})
    assert flow.connectors() == {"zendesk"}
    assert flow.after_hangup == "sum_up"


def test_every_problem_at_once_with_its_path() -> None:
    data = reference_data()
    data["activities"]["greet"]["next"] = "nowhere"
    data["activities"]["main_menu"]["options"]["3"] = "gone"
    data["activities"]["main_menu"]["attempts"] = 0
    data["activities"]["say_status"]["items"].append({"text": "{unknown_var}"})
    data["activities"]["to_agent"]["queue"] = "Bad Name"
    data["activities"]["greet"]["colour"] = "blue"
    data["prompts"]["menu"] = {"es": "solo español"}
    found = problems_of(data, connectors={"crm"})
    assert found == [
        "prompts.menu: needs its text in the flow's language (en)",
        "activities.greet.colour: unknown setting",
        "activities.main_menu.attempts: must be an integer from 1 to 9",
        "activities.to_agent.queue: must be a queue name ([a-z0-9_-])",
        "activities.to_agent.queue: required (a queue name)",
        "activities.greet.next: no activity 'nowhere'",
        "activities.main_menu.options.3: no activity 'gone'",
        "activities.say_status.items[3].text: unknown variable 'unknown_var'"
        " (declare it under variables)",
        "activities.find_user.connector: no connector 'zendesk' in the config's"
        " services.connectors",
        "activities.find_ticket.connector: no connector 'zendesk' in the config's"
        " services.connectors",
        "activities.sum_up.connector: no connector 'zendesk' in the config's services.connectors",
    ]


def test_secure_variables_are_never_said_sent_or_written() -> None:
    data = reference_data()
    data["variables"]["pin"] = {"secure": True}
    data["activities"]["greet"]["items"].append({"text": "your pin {pin}"})
    data["activities"]["sum_up"]["body"] = "pin {pin}"
    data["activities"]["caller_language"]["values"]["menu_choice"] = "{pin}"
    found = problems_of(data)
    assert "activities.greet.items[1].text: secure variable 'pin' may not be said, sent or" \
        " written here" in found  # fmt: skip
    assert any(p.startswith("activities.sum_up.body: secure variable 'pin'") for p in found)
    assert any(
        p.startswith("activities.caller_language.values.menu_choice: secure variable 'pin'")
        for p in found
    )


def test_after_hangup_handler_may_not_need_the_caller() -> None:
    data = reference_data()
    data["activities"]["sum_up"]["next"] = "goodbye"
    assert problems_of(data) == [
        "activities.end_call: a hangup needs the caller; it cannot run after the hang-up"
        " (handlers.after_hangup reaches it)",
        "activities.goodbye: a say needs the caller; it cannot run after the hang-up"
        " (handlers.after_hangup reaches it)",
    ]


def test_unreachable_activity_and_quick_loop() -> None:
    data = reference_data()
    data["activities"]["orphan"] = {"type": "hangup"}
    assert problems_of(data) == ["activities.orphan: never reached from start or a handler"]
    data = reference_data()
    data["activities"]["no_agent"]["next"] = "goodbye"
    data["activities"]["goodbye"]["next"] = "no_agent"
    data["activities"]["to_agent"]["on_timeout"] = "no_agent"
    assert problems_of(data) == [
        "activities: goodbye -> no_agent -> goodbye loops without waiting for the caller"
    ]


def test_not_a_mapping() -> None:
    assert problems_of([1, 2]) == ["(top): a flow must be a mapping"]


# -- properties -----------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8), st.just("{user_id}"),
    st.just("{"), st.just("$.x[0]"), st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["1", "a", "next"]), st.text(max_size=4), max_size=2),
)  # fmt: skip


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


REF = reference_data()
PATHS = _paths(REF)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(st.just("<delete>"), SCALARS)),
        min_size=1,
        max_size=4,
    )
)
def test_any_mutation_is_a_flow_or_problems_with_paths(edits: list[tuple[Any, Any]]) -> None:
    """Whatever is broken, the validator lists problems with paths, never crashes."""
    data = copy.deepcopy(REF)
    for path, value in edits:
        node: Any = data
        try:
            for key in path[:-1]:
                node = node[key]
            if value == "<delete>":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        flow = parse_flow(data)
    except FlowError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), problem
        return
    # Valid: the engine runs it to an end against a service that answers nothing.
    engine = FlowEngine(flow, CallInfo("+34600", "8000", "e", "c"))
    pending = engine.start()
    for _ in range(40):
        if engine.finished:
            break
        last = pending[-1]
        if isinstance(last, HttpRequest):
            pending = engine.handle(HttpAnswered(200, {}))
        elif isinstance(last, CollectKeys):
            pending = engine.handle(KeysEntered("9"))
        else:
            from payivr.core.flow.events import CallerHungUp

            pending = engine.handle(CallerHungUp())


@settings(max_examples=100, deadline=None)
@given(st.sets(st.sampled_from(sorted(REF["activities"])), min_size=1, max_size=5))
def test_each_broken_target_is_reported(broken: set[str]) -> None:
    """N activities pointing nowhere: N problems, one per path."""
    data = copy.deepcopy(REF)
    expected = set()
    for aid in broken:
        activity = data["activities"][aid]
        key = next((k for k in ("next", "then", "on_failure", "default") if k in activity), None)
        if key is None:
            activity["on_error"] = "missing_x"
            key = "on_error"
        else:
            activity[key] = "missing_x"
        expected.add(f"activities.{aid}.{key}: no activity 'missing_x'")
    found = problems_of(data)
    assert expected <= set(found)


def test_a_missing_or_broken_flow_file_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as missing:
        load_flow(tmp_path / "nope.yaml")
    assert missing.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("activities: [\n")
    with pytest.raises(FlowError) as broken:
        load_flow(bad)
    (problem,) = broken.value.problems
    assert problem.startswith(f"{bad}: not valid YAML: ")
