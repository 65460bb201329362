"""The capture plan (SPEC section 6): a state machine with no I/O.

Drivers (the ESL application, agent mode, ``payivr simulate``) build a
:class:`CapturePlan` and hand it to the one executor (payivr.execution), which carries
out the commands from ``start()`` and feeds back one event per ``Collect`` /
``ProcessPayment`` through ``handle()``. See ``docs/capture-plan.md``.
"""

from __future__ import annotations

from payivr.core.errors import IllegalTransition
from payivr.core.plan.commands import (
    Collect,
    Command,
    Finish,
    Listen,
    MaskRecording,
    Play,
    ProcessPayment,
    ReadBackDigits,
    ReturnCall,
    SayAmount,
    SayDigits,
    UnmaskRecording,
)
from payivr.core.plan.events import (
    CallerHungUp,
    CancelRequested,
    DigitsEntered,
    Event,
    InputTimeout,
    ProcessorAnswered,
    SpeechHeard,
    SpeechUnclear,
)
from payivr.core.plan.fields import Field
from payivr.core.plan.machine import MAX_FREE_RESTARTS, CapturePlan, FieldReport
from payivr.core.plan.table import TRANSITIONS, State

__all__ = [
    "MAX_FREE_RESTARTS",
    "TRANSITIONS",
    "CallerHungUp",
    "CancelRequested",
    "CapturePlan",
    "Collect",
    "Command",
    "DigitsEntered",
    "Event",
    "Field",
    "FieldReport",
    "Finish",
    "IllegalTransition",
    "InputTimeout",
    "Listen",
    "MaskRecording",
    "Play",
    "ProcessPayment",
    "ProcessorAnswered",
    "ReadBackDigits",
    "ReturnCall",
    "SayAmount",
    "SayDigits",
    "SpeechHeard",
    "SpeechUnclear",
    "State",
    "UnmaskRecording",
]
