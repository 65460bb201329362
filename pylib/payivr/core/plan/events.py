"""What the driver (ESL application, agent mode, simulator) tells the capture plan.

Frozen dataclasses, h11 style. Keyed digits travel only inside ``SecretDigits``,
whose repr shows the length, never a digit, so printing an event is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from payivr.core.plan.fields import Field
from payivr.core.processor import ProcessorAnswer
from payivr.core.reasons import Reason
from payivr.core.secrets import SecretDigits


@dataclass(frozen=True)
class DigitsEntered:
    """The caller keyed ``digits`` for ``field``.

    ``terminator`` is ``"#"`` (ended early), ``"*"`` (the caller wants to restart the
    field; the digits are discarded) or None (max digits reached, or the digit timeout
    ended a non-empty entry).
    """

    field: Field
    digits: SecretDigits
    terminator: str | None = None


@dataclass(frozen=True)
class InputTimeout:
    """Nothing was keyed for ``field`` before the field timeout."""

    field: Field


@dataclass(frozen=True)
class ProcessorAnswered:
    """The processor's answer to ``ProcessPayment``.

    The driver turns a ``ProcessorTimeout`` into
    ``ProcessorAnswer(code=failed, reason="processor-timeout")``.
    """

    answer: ProcessorAnswer


@dataclass(frozen=True)
class CancelRequested:
    """Someone other than the caller ended the payment while a field was open (the
    agent's cancel in agent-assisted mode). ``reason`` is the result's reason."""

    reason: Reason


@dataclass(frozen=True)
class CallerHungUp:
    """The caller's leg is gone. Nothing more can be played.

    ``media_lost``: the call was lost with the media server (FreeSWITCH died), the
    caller did not hang up; outside processing the payment then failed
    (ivr-unavailable) rather than being cancelled by the caller."""

    media_lost: bool = False


@dataclass(frozen=True)
class SpeechHeard:
    """The recogniser heard exactly what a ``Listen`` asked for.

    ``digits`` are the digits said (for a read-back question: "1" for yes, "2" for
    no), already in SecretDigits: no transcript exists beyond the recogniser's call.
    """

    field: Field
    digits: SecretDigits


@dataclass(frozen=True)
class SpeechUnclear:
    """Something was said for ``field`` that does not fit the listen's grammar
    (noise, too few or too many digits, other words)."""

    field: Field


Event = (
    DigitsEntered
    | InputTimeout
    | SpeechHeard
    | SpeechUnclear
    | ProcessorAnswered
    | CancelRequested
    | CallerHungUp
)
