"""The flow engine: a flow file run as a state machine with no I/O.

    engine = FlowEngine(flow, CallInfo(ani="+34600111222", dnis="8000", entry="support"))
    commands = engine.start()          # then, for each answer the driver gets:
    commands = engine.handle(event)    # KeysEntered, HttpAnswered, QueueLeft, ...

Like the capture plan it is driven by the one executor (payivr.execution): the
commands are carried out in order and the activity that waits (menu, collect, http,
queue, pay) gets exactly one answer. An event the engine is not waiting for raises
``IllegalTransition`` and changes nothing.

The call has two phases. While the caller is on the line the activities run from
``start``; an activity's error goes to its ``on_error``, else (once per call) to the
flow's on-error handler, else the call is hung up: a flow never leaves a caller in
silence. When the call ends (``hangup``, ``transfer``, the caller hanging up, a flow
that runs out of activities) the after-hang-up handler runs, with no caller; then
``flow.ended``. A hang-up heard after that changes nothing.

Events (``PublishEvent``) carry activity ids, kinds and verdicts, never a variable's
value.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import FlowCommand, HangUp, PublishEvent
from payivr.core.flow.events import CallerHungUp
from payivr.core.flow.model import Activity, Env, Flow, Step
from payivr.core.flow.variables import Variables
from payivr.core.reasons import Reason

# Activities run for one event without waiting; a flow that goes past this (the
# validator refuses loops of non-waiting activities) is stopped as an error.
MAX_STEPS = 200

FLOW_STARTED = "flow.started"
ACTIVITY_DONE = "activity.done"
FLOW_ENDED = "flow.ended"


class Phase(enum.Enum):
    CALL = "call"  # the caller is on the line
    AFTER_HANGUP = "after-hangup"  # the after-hang-up handler runs
    ENDED = "ended"


class FlowStuck(Exception):
    """The flow ran MAX_STEPS activities without waiting (a bug in the flow)."""


@dataclass(frozen=True)
class CallInfo:
    """What the driver knows of the call when the flow starts."""

    ani: str  # the caller's number
    dnis: str  # the number dialled (request URI user)
    entry: str  # the entry point's name
    call_id: str = ""
    language: str = ""  # the entry point's language; "" for the flow's


class FlowEngine:
    """One call's run of a flow (see the module's docstring)."""

    last_field = None  # the executor's Engine interface: flows have no card fields

    def __init__(self, flow: Flow, call: CallInfo) -> None:
        self.flow = flow
        self.call = call
        values = {spec.name: spec.initial for spec in flow.variables.values()}
        values.update(
            ani=call.ani,
            ani_digits="".join(c for c in call.ani if c.isdigit()),
            dnis=call.dnis,
            entry=call.entry,
            call_id=call.call_id,
            flow=flow.name,
            language=flow.language,
        )
        variables = Variables(values, (s.name for s in flow.variables.values() if s.secure))
        if call.language:
            variables.set("language", call.language)
        self.env = Env(flow.name, variables, flow.prompts, flow.language)
        self.phase = Phase.CALL
        self.current: Activity | None = None
        self.waiting: tuple[type, ...] = ()
        self._started = False
        self._error_handled = False
        self._steps = 0

    @property
    def variables(self) -> Variables:
        return self.env.vars

    @property
    def finished(self) -> bool:
        return self.phase is Phase.ENDED

    def start(self) -> list[FlowCommand]:
        if self._started:
            raise IllegalTransition("the flow has started already")
        self._started = True
        started = self._event(
            FLOW_STARTED, {"entry": self.call.entry, "language": self.env.language}
        )
        return [started, *self._run(self.flow.start)]

    def handle(self, event: Any) -> list[FlowCommand]:
        if not self._started:
            raise IllegalTransition("the flow has not started")
        self._steps = 0
        if isinstance(event, CallerHungUp):
            return self._caller_gone()
        if self.current is None or not isinstance(event, self.waiting):
            expected = ", ".join(t.__name__ for t in self.waiting) or "nothing"
            raise IllegalTransition(f"flow waits for {expected}, not {type(event).__name__}")
        activity = self.current
        step = activity.answer(event, self.env)  # raises before any change if illegal
        self.current, self.waiting = None, ()
        return self._follow(activity, step)

    def wipe(self) -> None:
        """Forget the secure values (the executor calls it however the run ends)."""
        self.env.vars.wipe()

    # -- running activities ------------------------------------------------------------

    def _run(self, activity_id: str) -> list[FlowCommand]:
        activity = self.flow.activities[activity_id]
        return self._follow(activity, self._begin(activity))

    def _begin(self, activity: Activity) -> Step:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise FlowStuck(f"flow {self.flow.name}: {MAX_STEPS} activities without a wait")
        return activity.begin(self.env)

    def _follow(self, activity: Activity, step: Step) -> list[FlowCommand]:
        out: list[FlowCommand] = []
        while True:
            out += [self._event(name, fields) for name, fields in step.events]
            out += step.commands
            if step.waits:
                self.current, self.waiting = activity, step.waits
                return out
            out.append(
                self._event(
                    ACTIVITY_DONE,
                    {"activity": activity.id, "kind": activity.kind, "outcome": step.outcome},
                )
            )
            if step.ends_call:
                return out + self._after_hangup("flow")
            target = self._next(activity, step)
            if target is None:
                if self.phase is Phase.CALL:
                    # The flow ran out of activities with the caller still there.
                    out.append(HangUp())
                    return out + self._after_hangup("flow")
                return out + self._end()
            activity = self.flow.activities[target]
            if self.phase is not Phase.CALL and activity.media:
                return out + self._end()  # no caller (the validator refuses such flows)
            step = self._begin(activity)

    def _next(self, activity: Activity, step: Step) -> str | None:
        if step.error is None:
            return step.goto
        self.env.vars.set("error", step.error)
        self.env.vars.set("error_activity", activity.id)
        if activity.on_error is not None:
            return activity.on_error
        if self.phase is Phase.CALL and self.flow.on_error and not self._error_handled:
            self._error_handled = True  # once: an on-error handler that fails hangs up
            return self.flow.on_error
        return None

    def _caller_gone(self) -> list[FlowCommand]:
        if self.phase is not Phase.CALL:
            return []  # the call was already over for the flow
        out: list[FlowCommand] = []
        if self.current is not None:
            out.append(
                self._event(
                    ACTIVITY_DONE,
                    {
                        "activity": self.current.id,
                        "kind": self.current.kind,
                        "outcome": Reason.CALLER_HANGUP,
                    },
                )
            )
        self.current, self.waiting = None, ()
        return out + self._after_hangup("caller")

    def _after_hangup(self, ended_by: str) -> list[FlowCommand]:
        self.phase = Phase.AFTER_HANGUP
        self.current, self.waiting = None, ()
        self.env.vars.set("ended_by", ended_by)
        handler = self.flow.after_hangup
        if handler is None:
            return self._end()
        return self._run(handler)

    def _end(self) -> list[FlowCommand]:
        self.phase = Phase.ENDED
        self.current, self.waiting = None, ()
        return [self._event(FLOW_ENDED, {"ended_by": self.env.vars.get("ended_by")})]

    def _event(self, name: str, fields: Mapping[str, str]) -> PublishEvent:
        common = {"flow": self.flow.name, "entry": self.call.entry, "call": self.call.call_id}
        return PublishEvent(name, tuple({**common, **fields}.items()))


__all__ = ["CallInfo", "FlowEngine", "FlowStuck", "Phase"]
