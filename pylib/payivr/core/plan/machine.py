"""The capture plan of SPEC section 6 as a state machine with no I/O.

``CapturePlan.start()`` and ``CapturePlan.handle(event)`` return the commands the
driver must carry out, in order. The driver owns the call (ESL, or the terminal for
``payivr simulate``); the plan owns the rules: fields, attempts, re-prompts, masking,
what is said, and the wiping of card data.

Ownership of keyed digits: the ``SecretDigits`` in a ``DigitsEntered`` belong to the
plan from then on. It wipes them at once when they are rejected, and keeps accepted
ones only until the processor has answered (or the payment is cancelled).
"""

from __future__ import annotations

import dataclasses
import datetime

from payivr.core.card import (
    brand_candidates,
    cvv_length,
    luhn_valid,
    validate_cvv,
    validate_expiry,
    validate_pan,
)
from payivr.core.config import MerchantConfig
from payivr.core.errors import IllegalTransition
from payivr.core.plan.commands import (
    Collect,
    Command,
    Finish,
    Listen,
    MaskRecording,
    ProcessPayment,
    ReadBackDigits,
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
from payivr.core.plan.speech import (
    INVALID_CHOICE,
    NO_INPUT,
    NOT_CONFIRMED,
    RESTARTED,
    SPEECH_UNCLEAR,
    announce,
    farewell,
    play,
    reprompt,
)
from payivr.core.plan.table import FIELD_OF_STATE, STATE_OF_FIELD, TRANSITIONS, Start, State
from payivr.core.processor import Operation, ProcessorAnswer, ResultCode
from payivr.core.prompts import PromptId
from payivr.core.reasons import Reason
from payivr.core.request import PaymentRequest
from payivr.core.result import Outcome
from payivr.core.secrets import CardDetails, SecretDigits
from payivr.core.speech_input import NO, YES

# "*" restarts a field without using an attempt, but only this many times per field:
# after that a "*" counts as a failed attempt, so no caller can keep a line forever.
MAX_FREE_RESTARTS = 5

CONFIRM_YES = "1"
CONFIRM_START_AGAIN = "2"

# Speech input: the card number is said in chunks of at most this many digits (four
# is what a digit grammar of fixed length recognises reliably, and how most cards are
# printed).
CHUNK_DIGITS = 4
# The lengths a card number of each brand can be said in, shortest first
# (docs/dictation.md, "Card lengths"). Where a brand allows more than one, the number
# ends at the first whose digits pass Luhn; where they do not, the caller is asked for
# the digits up to the next one. Lengths left out are keyed: a stop at 12, 13 or 15 for
# Maestro or at 13 for Visa would cut one in ten of the far commoner 16-digit numbers
# short (their first digits pass Luhn by chance), and 17 and 18 digits are not issued
# in practice.
SPOKEN_PAN_LENGTHS: dict[str, tuple[int, ...]] = {
    "visa": (16, 19),
    "mastercard": (16,),
    "amex": (15,),
    "discover": (16, 19),
    "diners": (14, 16, 19),
    "jcb": (16, 19),
    "maestro": (16, 19),
    "unionpay": (16, 19),
}
# A chunk may be said again this often (a "no" to its read-back, noise, silence)
# before it counts as a failed attempt at the whole field.
MAX_CHUNK_REPEATS = 2
# The read-back question is asked again this often (silence, noise, another key)
# before the answer counts as "no".
MAX_READBACK_MISSES = 2


@dataclasses.dataclass(frozen=True)
class FieldReport:
    """How the last entry went, for the ``field.completed`` event and the agent panel.

    Never holds digits: only how many were keyed and, for the card number, the brand.
    ``reason`` is a validation reason, ``no-input``, ``restart`` (a free ``*``),
    ``restarted``, ``invalid-choice``, ``skipped`` (optional CVV) or ``start-again``.
    """

    field: Field
    valid: bool
    reason: str | None
    digit_count: int
    brand: str | None = None

    def event_fields(self) -> dict[str, str]:
        """The fields of the `field.completed` event (SPEC 5): verdicts, never digits."""
        fields = {
            "field": str(self.field),
            "valid": str(self.valid).lower(),
            "digit_count": str(self.digit_count),
        }
        if self.reason:
            fields["reason"] = self.reason
        if self.brand:
            fields["brand"] = self.brand
        return fields


class CapturePlan:
    """One payment's capture plan. Not thread-safe: one driver feeds it events."""

    def __init__(
        self, request: PaymentRequest, merchant: MerchantConfig, today: datetime.date
    ) -> None:
        self.request = request
        self.merchant = merchant
        self.today = today
        self.state = State.NEW
        self.outcome: Outcome | None = None
        # Set by each handle() that completed an entry; None otherwise.
        self.last_field: FieldReport | None = None
        self._pan: SecretDigits | None = None
        self._expiry: SecretDigits | None = None
        self._cvv: SecretDigits | None = None
        self._brand: str | None = None
        self._card: CardDetails | None = None
        self._failures = 0  # failed attempts on the current field
        self._restarts = 0  # free "*" restarts used on the current field
        self._card_restarts = 0  # "2, start again" at the confirmation
        self._masked = False
        # Speech input: the field being said, its confirmed chunks, the chunk read
        # back and waiting for yes/no, and how often the current chunk was repeated.
        self._spoken: Field | None = None
        self._chunks: list[SecretDigits] = []
        self._heard: SecretDigits | None = None
        self._chunk_repeats = 0
        self._readback_misses = 0

    # -- public API ------------------------------------------------------------------

    def start(self) -> list[Command]:
        """The opening commands: greeting, amount, first Collect (or ProcessPayment)."""
        return self._dispatch(Start())

    def handle(self, event: Event) -> list[Command]:
        """Take one event; raise IllegalTransition (changing nothing) if out of turn."""
        return self._dispatch(event)

    @property
    def attempts(self) -> int:
        return max(1, self.merchant.capture.attempts)

    @property
    def finished(self) -> bool:
        """Nothing more will be asked of the caller: ``done``, or the caller hung up
        while the processor works (then ``Finish`` still follows the answer)."""
        return self.state in (State.DONE, State.PROCESSING_CALLER_GONE)

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(self, event: Event | Start) -> list[Command]:
        transition = TRANSITIONS.get((self.state, type(event)))
        if transition is None:
            raise IllegalTransition(f"{type(event).__name__} not accepted in state {self.state}")
        if isinstance(event, DigitsEntered | InputTimeout | SpeechHeard | SpeechUnclear):
            expected = FIELD_OF_STATE[self.state]
            if event.field is not expected:
                raise IllegalTransition(
                    f"{type(event).__name__} for {event.field} while collecting {expected}"
                )
        self.last_field = None
        commands: list[Command] = getattr(self, transition.handler)(event)
        if self.state not in transition.targets:
            # The table lists every state a handler may lead to; leaving it is a bug here.
            raise RuntimeError(f"{transition.handler} led to {self.state}, not in the table")
        return commands

    # -- handlers (named in table.TRANSITIONS) ---------------------------------------

    def _on_start(self, _: Start) -> list[Command]:
        op = self.request.operation
        if op is Operation.TOKENIZE:
            commands: list[Command] = [play(PromptId.GREETING_TOKENIZE)]
        else:
            commands = [
                play(PromptId.GREETING),
                play(PromptId.AMOUNT_INTRO),
                SayAmount(self.request.amount, self.request.currency),
            ]
        if op is Operation.TOKEN_SALE:
            commands.append(play(PromptId.TOKEN_SALE_INTRO))
            if self.merchant.capture.token_sale_cvv:
                return commands + self._enter(Field.CVV)
            return commands + self._process()
        return commands + self._enter(Field.CARD_NUMBER)

    def _on_digits(self, event: DigitsEntered) -> list[Command]:
        field, digits = event.field, event.digits
        count = len(digits)
        # A keyed entry is the whole field (a key press wins over speech): chunks
        # said before it are dropped.
        self._drop_chunks()
        if event.terminator == "*":
            digits.wipe()
            self._restarts += 1
            if self._restarts > MAX_FREE_RESTARTS:
                return self._failed(field, RESTARTED, count)
            self.last_field = FieldReport(field, False, "restart", count)
            return [play(PromptId.RESTART_FIELD), *self._ask(field)]
        if field is Field.CONFIRM:
            return self._on_choice(digits)
        if field is Field.CVV and count == 0 and event.terminator == "#" and self._cvv_skippable():
            digits.wipe()
            self.last_field = FieldReport(field, True, "skipped", 0)
            return self._after_cvv()
        return self._entry(field, digits)

    def _entry(self, field: Field, digits: SecretDigits) -> list[Command]:
        """A whole card field, keyed or said: the same rules and next steps."""
        count = len(digits)
        reason = self._check(field, digits)
        if reason is not None:
            digits.wipe()
            return self._failed(field, reason, count)
        self.last_field = FieldReport(field, True, None, count, self._brand)
        if field is Field.CARD_NUMBER:
            return self._enter(Field.EXPIRY)
        if field is Field.EXPIRY:
            return self._enter(Field.CVV)
        return self._after_cvv()

    def _on_timeout(self, event: InputTimeout) -> list[Command]:
        if self._listens(event.field) and self._at_spoken_stop(event.field):
            # Silence where the number may end (the caller was asked for more digits
            # "if there are any"): the number is what was said, and the keyed rules
            # say why it is refused (invalid-number).
            whole = SecretDigits.joined(self._chunks)
            self._drop_chunks()
            return self._entry(event.field, whole)
        if self._listens(event.field):
            return self._chunk_miss(event.field, NO_INPUT)
        return self._failed(event.field, NO_INPUT, 0)

    # -- speech input (docs/dictation.md) ------------------------------------------

    def _on_heard(self, event: SpeechHeard) -> list[Command]:
        """A chunk was heard: read it back and ask whether it is right."""
        self._heard = event.digits
        self._spoken = event.field
        self._readback_misses = 0
        self.state = State.READBACK
        return [play(PromptId.READBACK_INTRO), ReadBackDigits(event.digits), self._question()]

    def _on_unclear(self, event: SpeechUnclear) -> list[Command]:
        return self._chunk_miss(event.field, SPEECH_UNCLEAR)

    def _on_readback(self, event: SpeechHeard | DigitsEntered) -> list[Command]:
        answer = event.digits.reveal() if event.digits.is_digits() else ""
        event.digits.wipe()
        if answer == YES:
            return self._chunk_confirmed()
        if answer == NO:
            return self._chunk_rejected()
        return self._readback_miss(PromptId.CONFIRM_INVALID)

    def _on_readback_unclear(self, event: InputTimeout | SpeechUnclear) -> list[Command]:
        miss = PromptId.NO_INPUT if isinstance(event, InputTimeout) else PromptId.SPEECH_UNCLEAR
        return self._readback_miss(miss)

    def _readback_miss(self, prompt: PromptId) -> list[Command]:
        self._readback_misses += 1
        if self._readback_misses > MAX_READBACK_MISSES:
            return self._chunk_rejected()
        return [play(prompt), self._question()]

    def _question(self) -> Listen:
        keyed = self._collect(Field.READBACK, PromptId.READBACK_CHOICE, 1, 1)
        return Listen(
            Field.READBACK,
            PromptId.READBACK_CHOICE.value,
            0,
            self.merchant.capture.field_timeout_ms,
            keyed,
        )

    def _chunk_confirmed(self) -> list[Command]:
        field, heard = self._spoken_field(), self._heard
        if heard is None:
            raise RuntimeError("read-back answered without a chunk heard")
        self._heard = None
        self._chunks.append(heard)
        self._chunk_repeats = 0
        self.state = STATE_OF_FIELD[field]
        said = sum(len(c) for c in self._chunks)
        first_chunk_unknown = said == CHUNK_DIGITS and not brand_candidates(self._chunks[0])
        if field is Field.CARD_NUMBER and first_chunk_unknown:
            self._drop_chunks()
            return self._failed(field, "unknown-brand", said)
        stops = self._spoken_stops(field)
        if said not in stops and said < stops[-1]:
            return [self._listen_chunk(field)]
        whole = SecretDigits.joined(self._chunks)
        if said < stops[-1] and not luhn_valid(whole):
            # A length the brand allows, but not a valid number at it: the card may
            # be longer (16 of 16 or 19), so ask for the digits up to the next length.
            whole.wipe()
            return [self._listen_chunk(field)]
        self._drop_chunks()
        return self._entry(field, whole)

    def _chunk_rejected(self) -> list[Command]:
        field = self._spoken_field()
        if self._heard is not None:
            self._heard.wipe()
            self._heard = None
        self.state = STATE_OF_FIELD[field]
        return self._chunk_miss(field, NOT_CONFIRMED)

    def _chunk_miss(self, field: Field, reason: str) -> list[Command]:
        """The chunk being said was not taken: say it again, or after too many
        repeats count a failed attempt at the whole field (which starts it over)."""
        self._chunk_repeats += 1
        if self._chunk_repeats > MAX_CHUNK_REPEATS:
            said = sum(len(c) for c in self._chunks)
            self._drop_chunks()
            return self._failed(field, reason, said)
        return [play(reprompt(field, reason)), self._listen_chunk(field)]

    def _spoken_field(self) -> Field:
        if self._spoken is None:
            raise RuntimeError("no field is being said")
        return self._spoken

    def _listens(self, field: Field) -> bool:
        """Is ``field`` asked for by speech (the request's X-Pay-Input)?"""
        return field.is_card_data and self.request.input_mode.listens

    def _spoken_stops(self, field: Field) -> tuple[int, ...]:
        """The lengths at which what is said for ``field`` may end, shortest first.
        For the card number the brand of the first chunk decides (SPOKEN_PAN_LENGTHS;
        a four-digit prefix fixes the brand's lengths: the longer IIN ranges, such as
        Discover's 622126-622925, lie inside a shorter one with the same lengths)."""
        if field is Field.EXPIRY:
            return (4,)
        if field is Field.CVV:
            return (cvv_length(self._brand) or 3,)
        if not self._chunks:
            return (CHUNK_DIGITS,)
        candidates = brand_candidates(self._chunks[0])
        return SPOKEN_PAN_LENGTHS[candidates[0]] if candidates else (16,)

    def _next_stop(self, field: Field) -> int:
        """The next length, beyond what was said, at which ``field`` may end."""
        said = sum(len(c) for c in self._chunks)
        stops = self._spoken_stops(field)
        return next((n for n in stops if n > said), stops[-1])

    def _at_spoken_stop(self, field: Field) -> bool:
        """Has the caller said a whole number of a length the brand allows, and been
        asked for more digits because it failed Luhn there?"""
        said = sum(len(c) for c in self._chunks)
        return field is Field.CARD_NUMBER and said in self._spoken_stops(field)[:-1]

    def _listen_chunk(self, field: Field) -> Listen:
        said = sum(len(c) for c in self._chunks)
        length = min(CHUNK_DIGITS, self._next_stop(field) - said)
        if field is Field.CARD_NUMBER:
            if self._at_spoken_stop(field):
                prompt = PromptId.SAY_REMAINING_DIGITS
            elif said:
                prompt = PromptId.SAY_NEXT_DIGITS
            elif self.request.input_mode.value == "any":
                prompt = PromptId.SAY_OR_KEY_CARD_NUMBER
            else:
                prompt = PromptId.SAY_CARD_NUMBER
        elif field is Field.EXPIRY:
            prompt = PromptId.SAY_EXPIRY
        else:
            prompt = PromptId.SAY_CVV
        self._spoken = field
        (keyed,) = self._keyed_ask(field)
        if not isinstance(keyed, Collect):
            raise RuntimeError(f"{field} has no single keypad entry")
        return Listen(field, prompt.value, length, self.merchant.capture.field_timeout_ms, keyed)

    def _drop_chunks(self) -> None:
        for chunk in self._chunks:
            chunk.wipe()
        self._chunks = []
        if self._heard is not None:
            self._heard.wipe()
            self._heard = None
        self._chunk_repeats = 0

    def _on_hangup(self, event: CallerHungUp) -> list[Command]:
        # The call is gone: record the end, play nothing, return nothing.
        if event.media_lost:
            return self._fail(Reason.IVR_UNAVAILABLE)
        return self._cancel(Reason.CALLER_HANGUP, say=False)

    def _on_cancel(self, event: CancelRequested) -> list[Command]:
        return self._cancel(event.reason, say=False)

    def _on_hangup_processing(self, _: Event) -> list[Command]:
        # The processor is already working with the card: whatever it answers is the
        # truth (money may have moved), so wait for the answer and record that rather
        # than a "cancelled" that could hide a real charge.
        self.state = State.PROCESSING_CALLER_GONE
        return []

    def _on_answer(self, event: ProcessorAnswered) -> list[Command]:
        outcome = self._conclude(event.answer)
        hangup = self.request.return_to.kind == "hangup"
        return [
            *self._unmask(),
            Finish(outcome),
            *announce(self.request.operation, outcome),
            *farewell(hangup),
        ]

    def _on_answer_caller_gone(self, event: ProcessorAnswered) -> list[Command]:
        return [*self._unmask(), Finish(self._conclude(event.answer))]

    def _on_late_hangup(self, _: Event) -> list[Command]:
        # Hanging up while the result is said is normal (the result is recorded), and
        # a second hang-up report while the processor works changes nothing either.
        return []

    # -- steps -----------------------------------------------------------------------

    def _enter(self, field: Field) -> list[Command]:
        """Move to ``field`` with fresh counters; mask recordings before card data."""
        self.state = STATE_OF_FIELD[field]
        self._failures = 0
        self._restarts = 0
        commands: list[Command] = []
        if field.is_card_data and not self._masked:
            self._masked = True
            commands.append(MaskRecording())
        return commands + self._ask(field)

    def _ask(self, field: Field) -> list[Command]:
        if self._listens(field):
            self._drop_chunks()
            return [self._listen_chunk(field)]
        return self._keyed_ask(field)

    def _keyed_ask(self, field: Field) -> list[Command]:
        if field is Field.CARD_NUMBER:
            return [self._collect(field, PromptId.ENTER_CARD_NUMBER, 1, 19)]
        if field is Field.EXPIRY:
            return [self._collect(field, PromptId.ENTER_EXPIRY, 1, 4)]
        if field is Field.CVV:
            skippable = self._cvv_skippable()
            if self.request.operation is Operation.TOKEN_SALE:
                prompt = PromptId.ENTER_CVV_TOKEN
            elif skippable:
                prompt = PromptId.ENTER_CVV_OPTIONAL
            elif self._brand == "amex":
                prompt = PromptId.ENTER_CVV_AMEX
            else:
                prompt = PromptId.ENTER_CVV
            longest = cvv_length(self._brand) or 4
            return [self._collect(field, prompt, 0 if skippable else 1, longest)]
        last4 = self._pan.last4() if self._pan is not None else ""
        return [
            play(PromptId.CONFIRM_CARD_ENDING),
            SayDigits(last4),
            self._collect(field, PromptId.CONFIRM_CHOICE, 1, 1),
        ]

    def _collect(self, field: Field, prompt: PromptId, shortest: int, longest: int) -> Collect:
        capture = self.merchant.capture
        return Collect(
            field,
            prompt.value,
            min_digits=shortest,
            max_digits=longest,
            timeout_ms=capture.field_timeout_ms,
            digit_timeout_ms=capture.digit_timeout_ms,
        )

    def _check(self, field: Field, digits: SecretDigits) -> str | None:
        """Validate an entry; keep it when good. Returns the reason when not."""
        if field is Field.CARD_NUMBER:
            brand, reason = validate_pan(digits, self.merchant.brands)
            if reason is None:
                self._pan, self._brand = digits, brand
            return reason
        if field is Field.EXPIRY:
            reason = validate_expiry(digits, self.today)
            if reason is None:
                self._expiry = digits
            return reason
        reason = validate_cvv(digits, self._brand)
        if reason is None:
            self._cvv = digits
        return reason

    def _cvv_skippable(self) -> bool:
        return self.merchant.capture.cvv_optional

    def _after_cvv(self) -> list[Command]:
        """The last card digit is in: confirm or process, unmasking after the next
        prompt (the last key's in-band tone must not reach the recording)."""
        if self.merchant.capture.confirm_card and self.request.operation.captures_card:
            self.state = State.CONFIRM
            self._failures = 0
            self._restarts = 0
            first, *rest = self._ask(Field.CONFIRM)
            return [first, *self._unmask(), *rest]
        return self._process()

    def _on_choice(self, digits: SecretDigits) -> list[Command]:
        choice = digits.reveal() if digits.is_digits() else ""
        digits.wipe()
        if choice == CONFIRM_YES:
            self.last_field = FieldReport(Field.CONFIRM, True, None, 1)
            return self._process()
        if choice != CONFIRM_START_AGAIN:
            return self._failed(Field.CONFIRM, INVALID_CHOICE, len(choice))
        self.last_field = FieldReport(Field.CONFIRM, True, "start-again", 1)
        self._card_restarts += 1
        if self._card_restarts >= self.attempts:
            return self._cancel(Reason.ATTEMPTS_EXHAUSTED, say=True)
        self.wipe()
        self._brand = None
        return [play(PromptId.START_AGAIN), *self._enter(Field.CARD_NUMBER)]

    def _failed(self, field: Field, reason: str, count: int) -> list[Command]:
        self._failures += 1
        self.last_field = FieldReport(field, False, reason, count)
        if self._failures >= self.attempts:
            return self._cancel(Reason.ATTEMPTS_EXHAUSTED, say=True)
        return [play(reprompt(field, reason)), *self._ask(field)]

    def _process(self) -> list[Command]:
        """Ask the processor while the caller hears "processing". The recording stays
        masked through that prompt: the answer's commands unmask it (the executor
        plays them after the prompt)."""
        op = self.request.operation
        if op.captures_card:
            if self._pan is None or self._expiry is None or not self._brand:
                raise RuntimeError("processing without an accepted card number and expiry")
            self._card = CardDetails(self._pan, self._expiry, self._cvv, self._brand)
            self._pan = self._expiry = self._cvv = None
            card, token, cvv = self._card, None, None
        else:
            card, token, cvv = None, self.request.token, self._cvv
        prompt = PromptId.PROCESSING_TOKENIZE if op is Operation.TOKENIZE else PromptId.PROCESSING
        self.state = State.PROCESSING
        return [ProcessPayment(card, token, cvv, hold=prompt.value)]

    def _conclude(self, answer: ProcessorAnswer) -> Outcome:
        brand = self._card.brand if self._card is not None else None
        last4 = self._card.last4 if self._card is not None else None
        self.wipe()
        outcome = Outcome.from_answer(answer, brand=brand, last4=last4)
        if outcome.code is not ResultCode.APPROVED and outcome.reason is None:
            default = (
                Reason.CARD_DECLINED
                if outcome.code is ResultCode.DECLINED
                else Reason.PROCESSOR_ERROR
            )
            outcome = dataclasses.replace(outcome, reason=default)
        self.outcome = outcome
        self.state = State.DONE
        return outcome

    def _cancel(self, reason: Reason, *, say: bool) -> list[Command]:
        self.wipe()
        commands = self._unmask()
        self.outcome = Outcome.cancelled(reason)
        self.state = State.DONE
        commands.append(Finish(self.outcome))
        if say:
            commands.append(play(PromptId.ATTEMPTS_EXHAUSTED))
            commands += farewell(self.request.return_to.kind == "hangup")
        return commands

    def _fail(self, reason: Reason) -> list[Command]:
        """payivr could not go on with the call (its media server died): failed."""
        self.wipe()
        commands = self._unmask()
        self.outcome = Outcome.failed(reason)
        self.state = State.DONE
        commands.append(Finish(self.outcome))
        return commands

    def _unmask(self) -> list[Command]:
        if not self._masked:
            return []
        self._masked = False
        return [UnmaskRecording()]

    def wipe(self) -> None:
        """Zero every piece of card data the plan holds (idempotent).

        The plan does this itself on every path; a driver whose call ends abnormally
        (an exception mid-call) calls it too, so nothing outlives the call.
        """
        for secret in (self._pan, self._expiry, self._cvv):
            if secret is not None:
                secret.wipe()
        if self._card is not None:
            self._card.wipe()
        self._pan = self._expiry = self._cvv = None
        self._card = None
        self._drop_chunks()
