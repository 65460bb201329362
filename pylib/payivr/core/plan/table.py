"""States of the capture plan and the one table of its legal transitions.

Each entry maps ``(state, event type)`` to the handler that takes the event and the
states that handler may lead to. Anything not in the table is an illegal transition:
the plan raises ``IllegalTransition`` and changes nothing. The machine checks every
transition it makes against the targets listed here, so this table is the truth a
reader (or ``docs/capture-plan.md``) can rely on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from payivr.core.plan.events import (
    CallerHungUp,
    CancelRequested,
    DigitsEntered,
    InputTimeout,
    ProcessorAnswered,
    SpeechHeard,
    SpeechUnclear,
)
from payivr.core.plan.fields import Field


class State(enum.StrEnum):
    NEW = "new"  # before start()
    CARD_NUMBER = "card_number"  # a Collect for the card number is out
    EXPIRY = "expiry"
    CVV = "cvv"
    CONFIRM = "confirm"  # "card ending 1111, press 1 to confirm, 2 to start again"
    READBACK = "readback"  # speech: a chunk was read back; "is that right?" is out
    PROCESSING = "processing"  # ProcessPayment is out
    PROCESSING_CALLER_GONE = "processing_caller_gone"  # hung up while the processor works
    DONE = "done"  # Finish emitted; only a late hang-up is accepted


# The field whose Collect is outstanding in each collecting state.
FIELD_OF_STATE: dict[State, Field] = {
    State.CARD_NUMBER: Field.CARD_NUMBER,
    State.EXPIRY: Field.EXPIRY,
    State.CVV: Field.CVV,
    State.CONFIRM: Field.CONFIRM,
}
_KEYED = tuple(FIELD_OF_STATE)  # the states whose entry may be keyed
_SPOKEN = (State.CARD_NUMBER, State.EXPIRY, State.CVV)  # and those that may be spoken
FIELD_OF_STATE[State.READBACK] = Field.READBACK
STATE_OF_FIELD: dict[Field, State] = {f: s for s, f in FIELD_OF_STATE.items()}


class Start:
    """Pseudo-event for ``CapturePlan.start()``, so start goes through the table too."""


@dataclass(frozen=True)
class Transition:
    handler: str
    targets: frozenset[State]


def _t(handler: str, *targets: State) -> Transition:
    return Transition(handler, frozenset(targets))


_COLLECTING = tuple(FIELD_OF_STATE)
_AFTER_FIELD = frozenset(
    {*_COLLECTING, State.PROCESSING, State.DONE}
)  # next field, same field again, a read-back, processing, or cancelled

TRANSITIONS: dict[tuple[State, type], Transition] = {
    (State.NEW, Start): _t("_on_start", State.CARD_NUMBER, State.CVV, State.PROCESSING),
    (State.NEW, CallerHungUp): _t("_on_hangup", State.DONE),
    **{(s, DigitsEntered): Transition("_on_digits", _AFTER_FIELD) for s in _KEYED},
    **{(s, InputTimeout): Transition("_on_timeout", _AFTER_FIELD) for s in _KEYED},
    **{(s, SpeechHeard): _t("_on_heard", State.READBACK) for s in _SPOKEN},
    **{(s, SpeechUnclear): Transition("_on_unclear", frozenset({s, State.DONE})) for s in _SPOKEN},
    # The read-back question: yes/no said or 1/2 keyed; silence or noise asks again.
    (State.READBACK, SpeechHeard): Transition("_on_readback", _AFTER_FIELD),
    (State.READBACK, DigitsEntered): Transition("_on_readback", _AFTER_FIELD),
    (State.READBACK, InputTimeout): Transition("_on_readback_unclear", _AFTER_FIELD),
    (State.READBACK, SpeechUnclear): Transition("_on_readback_unclear", _AFTER_FIELD),
    **{(s, CallerHungUp): _t("_on_hangup", State.DONE) for s in _COLLECTING},
    **{(s, CancelRequested): _t("_on_cancel", State.DONE) for s in _COLLECTING},
    (State.PROCESSING, ProcessorAnswered): _t("_on_answer", State.DONE),
    (State.PROCESSING, CallerHungUp): _t("_on_hangup_processing", State.PROCESSING_CALLER_GONE),
    (State.PROCESSING_CALLER_GONE, ProcessorAnswered): _t("_on_answer_caller_gone", State.DONE),
    # A driver may see the hang-up twice (hangup event, then the socket closing).
    (State.PROCESSING_CALLER_GONE, CallerHungUp): _t(
        "_on_late_hangup", State.PROCESSING_CALLER_GONE
    ),
    (State.DONE, CallerHungUp): _t("_on_late_hangup", State.DONE),
}
