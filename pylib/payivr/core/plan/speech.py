"""Which prompts the capture plan says: re-prompts per reason, result announcements.

Kept apart from the state machine so the wording choices (and the catalogue ids they
use) are in one small place.
"""

from __future__ import annotations

from payivr.core.plan.commands import Command, Play, ReturnCall, SayDigits
from payivr.core.plan.fields import Field
from payivr.core.processor import Operation, ResultCode
from payivr.core.prompts import PromptId
from payivr.core.result import Outcome

# Reasons any field can have, besides its own validation reasons.
NO_INPUT = "no-input"
RESTARTED = "restarted"  # "*" pressed more often than the free restarts allow
INVALID_CHOICE = "invalid-choice"  # confirmation: neither 1 nor 2
SPEECH_UNCLEAR = "speech-unclear"  # speech input: said, but not what was asked for
NOT_CONFIRMED = "not-confirmed"  # speech input: "no" to the read-back

_BY_REASON: dict[Field, dict[str, PromptId]] = {
    Field.CARD_NUMBER: {
        "too-short": PromptId.CARD_TOO_SHORT,
        "too-long": PromptId.CARD_WRONG_LENGTH,
        "wrong-length": PromptId.CARD_WRONG_LENGTH,
        "not-digits": PromptId.CARD_INVALID_NUMBER,
        "invalid-number": PromptId.CARD_INVALID_NUMBER,
        "unknown-brand": PromptId.CARD_NOT_ACCEPTED,
        "brand-not-accepted": PromptId.CARD_NOT_ACCEPTED,
    },
    Field.EXPIRY: {
        "invalid-month": PromptId.EXPIRY_INVALID_MONTH,
        "expired": PromptId.EXPIRY_EXPIRED,
    },
    Field.CVV: {},
    Field.CONFIRM: {INVALID_CHOICE: PromptId.CONFIRM_INVALID},
    Field.READBACK: {},
}
_FIELD_DEFAULT: dict[Field, PromptId] = {
    Field.CARD_NUMBER: PromptId.CARD_INVALID_NUMBER,
    Field.EXPIRY: PromptId.EXPIRY_INVALID,
    Field.CVV: PromptId.CVV_INVALID,
    Field.CONFIRM: PromptId.CONFIRM_INVALID,
    Field.READBACK: PromptId.CONFIRM_INVALID,
}


def reprompt(field: Field, reason: str) -> PromptId:
    """The prompt said before asking for ``field`` again after ``reason``."""
    if reason == NO_INPUT:
        return PromptId.NO_INPUT
    if reason == RESTARTED:
        return PromptId.RESTART_FIELD
    if reason == SPEECH_UNCLEAR:
        return PromptId.SPEECH_UNCLEAR
    if reason == NOT_CONFIRMED:
        return PromptId.SAY_AGAIN
    return _BY_REASON[field].get(reason, _FIELD_DEFAULT[field])


def play(prompt: PromptId) -> Play:
    """A Play command carrying the prompt id as a plain string."""
    return Play(prompt.value)


def farewell(returns_to_ivr_hangup: bool) -> list[Command]:
    """Goodbye (the call ends here) or "transferring you back", then ReturnCall."""
    prompt = PromptId.GOODBYE if returns_to_ivr_hangup else PromptId.TRANSFER_BACK
    return [play(prompt), ReturnCall()]


def announce(operation: Operation, outcome: Outcome) -> list[Command]:
    """What the caller hears about the processor's answer."""
    if outcome.code is ResultCode.APPROVED:
        if operation is Operation.TOKENIZE:
            return [play(PromptId.RESULT_CARD_REGISTERED)]
        said: list[Command] = [play(PromptId.RESULT_APPROVED)]
        if outcome.auth_code:
            said += [play(PromptId.AUTH_CODE_IS), SayDigits(outcome.auth_code)]
        if operation is Operation.SALE_TOKENIZE and outcome.token:
            said.append(play(PromptId.RESULT_CARD_SAVED))
        return said
    if outcome.code is ResultCode.DECLINED:
        if operation is Operation.TOKENIZE:
            return [play(PromptId.RESULT_CARD_NOT_REGISTERED)]
        return [play(PromptId.RESULT_DECLINED)]
    return [play(PromptId.RESULT_FAILED)]
