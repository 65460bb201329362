"""Helpers for the flow engine tests: the reference flow, a driver loop, filters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from payivr.core.flow import CallInfo, Flow, FlowEngine, load_flow, parse_flow
from payivr.core.flow.commands import PublishEvent

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "flows" / "zendesk-caller-aware.yaml"


def reference() -> Flow:
    return load_flow(REFERENCE)


def reference_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REFERENCE.read_text())
    return data


def flow_of(text: str) -> Flow:
    return parse_flow(yaml.safe_load(text))


def engine(flow: Flow, ani: str = "+34 600 111 222", language: str = "") -> FlowEngine:
    return FlowEngine(flow, CallInfo(ani, "8000", "support", "call-1", language))


def run(eng: FlowEngine, answer: Callable[[Any], Any], *, limit: int = 50) -> list[Any]:
    """Start the engine and answer each waiting command with ``answer(command)``
    until the flow ends; every command, in order."""
    out: list[Any] = []
    pending = eng.start()
    for _ in range(limit):
        out += pending
        if eng.finished:
            return out
        event = answer(pending[-1] if pending else None)
        pending = eng.handle(event)
    raise AssertionError("the flow did not end")


def commands(out: list[Any]) -> list[Any]:
    """The commands without the events."""
    return [c for c in out if not isinstance(c, PublishEvent)]


def events(out: list[Any]) -> list[tuple[str, dict[str, str]]]:
    return [(c.name, dict(c.fields)) for c in out if isinstance(c, PublishEvent)]


def done(out: list[Any]) -> list[tuple[str, str]]:
    """(activity, outcome) of every activity.done, in order."""
    return [(f["activity"], f["outcome"]) for n, f in events(out) if n == "activity.done"]
