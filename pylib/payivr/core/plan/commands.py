"""What the capture plan asks its driver to do, in order.

The executor (payivr.execution) carries the commands out in the order given, with one
refinement the plan relies on: media commands (prompts, says, recording masks, the
return of the call) play one after the other on the call's media lane, and
``Finish`` does not wait for them. ``Collect`` and ``ProcessPayment`` wait until
everything before them has played; ``ProcessPayment`` then asks the processor while
the caller hears its ``hold`` prompt. So after the answer, ``[UnmaskRecording(),
Finish, Play(result) ...]`` records the result at once, and unmasks and says the
result when the hold prompt has ended.

Frozen dataclasses. None of them ever carries card data in a printable form:
``ProcessPayment`` holds ``CardDetails`` / ``SecretDigits`` whose repr shows only the
brand and last four / a length, and ``SayDigits`` is used for the last four digits
and authorisation codes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payivr.core.plan.fields import Field
from payivr.core.processor import ChargeRequest, idempotency_key
from payivr.core.request import PaymentRequest
from payivr.core.result import Outcome
from payivr.core.secrets import CardDetails, SecretDigits


@dataclass(frozen=True)
class Play:
    """Play one prompt of the catalogue (``payivr.core.prompts.PromptId``)."""

    prompt: str


@dataclass(frozen=True)
class SayAmount:
    """Say an amount in minor units (1250 EUR: "twelve euros fifty")."""

    amount: int
    currency: str


@dataclass(frozen=True)
class SayDigits:
    """Say characters one by one: the card's last four, or an authorisation code."""

    digits: str


@dataclass(frozen=True)
class Collect:
    """Play ``prompt`` and collect DTMF for ``field``.

    Answered by exactly one ``DigitsEntered`` or ``InputTimeout`` for that field (or
    ``CallerHungUp``). The plan validates everything itself, so ``min_digits`` is the
    shortest entry the driver must hand over (1; 0 where an empty ``#`` entry means
    "skip"): shorter-than-valid entries must reach the plan so it can say "too short".
    Any of ``terminators`` ends the entry; the driver reports which one.
    """

    field: Field
    prompt: str
    min_digits: int
    max_digits: int
    timeout_ms: int
    digit_timeout_ms: int
    terminators: str = "#*"


@dataclass(frozen=True)
class Listen:
    """Play ``prompt`` and listen for exactly ``length`` spoken digits for ``field``
    (``length`` 0: a yes/no answer), in the request's language.

    Answered by one ``SpeechHeard``, ``SpeechUnclear`` or ``InputTimeout`` for
    ``field`` (or ``CallerHungUp``). A key press while the prompt plays or the caller
    speaks always wins (barge-in): the driver stops listening, carries out ``keyed``
    (the keypad entry of the whole field) instead and answers as for it. A driver
    that cannot listen (no recogniser for the language, the audio stream lost)
    carries out ``keyed`` as well.
    """

    field: Field
    prompt: str
    length: int
    timeout_ms: int
    keyed: Collect


@dataclass(frozen=True)
class ReadBackDigits:
    """Say ``digits`` one by one from the language's digit prompt files
    (``digits/0.wav`` ...), never through a speech synthesiser. The plan wipes the
    digits after the answer to the read-back question, so the driver must not keep
    them."""

    digits: SecretDigits


@dataclass(frozen=True)
class MaskRecording:
    """Start masking every active recording of the call (record_session_mask)."""


# A phone that sends DTMF in-band as well as RFC 2833 leaves the last key's tone in
# the audio after the key event (tens of milliseconds, a frame or more); the recording
# stays masked at least this long after the last entry ended, so no tone tail is kept.
UNMASK_GUARD_MS = 500


@dataclass(frozen=True)
class UnmaskRecording:
    """Stop masking the recordings (record_session_unmask).

    Never sooner than ``guard_ms`` after the last digit collection ended (the
    executor waits out the rest), whatever else the call does meanwhile.
    """

    guard_ms: int = UNMASK_GUARD_MS


@dataclass(frozen=True)
class ProcessPayment:
    """Ask the processor. Answered by exactly one ``ProcessorAnswered``.

    Starts once every earlier command has played; the caller hears the ``hold``
    prompt (``processing``) while the processor works, so the answer can be recorded
    before that prompt has ended.

    ``card`` is None for ``token_sale``, which charges ``token`` (the request's token)
    instead; ``cvv`` is the security code keyed for a token sale when the merchant asks
    for one (``capture.token_sale_cvv``), else None. The plan wipes ``card`` and
    ``cvv`` when the answer arrives, so the driver must not keep them.
    """

    card: CardDetails | None
    token: str | None
    cvv: SecretDigits | None = field(default=None)
    hold: str | None = None

    def charge_request(self, request: PaymentRequest, *, timeout_s: float) -> ChargeRequest:
        """The processor call for ``request`` with what the caller keyed.

        One place for every driver (ESL, agent mode, simulate): the idempotency key
        from merchant and order, the token charged (token_sale) or the caller's
        reference for the one to be created (tokenizing operations)."""
        return ChargeRequest(
            merchant=request.merchant,
            order=request.order,
            operation=request.operation,
            amount=request.amount,
            currency=request.currency,
            description=request.description,
            idempotency_key=idempotency_key(request.merchant, request.order),
            timeout_s=timeout_s,
            card=self.card,
            token=self.token,
            token_reference=request.token if request.operation.returns_token else None,
            cvv=self.cvv,
        )


@dataclass(frozen=True)
class Finish:
    """The payment has ended: record ``outcome`` (session, outbox, events).

    Commands after it (result prompts, ``ReturnCall``) are played afterwards; on the
    hang-up path nothing follows.
    """

    outcome: Outcome


@dataclass(frozen=True)
class ReturnCall:
    """Return the call as the request's return target says (hangup, agent, URI)."""


Command = (
    Play
    | SayAmount
    | SayDigits
    | Collect
    | Listen
    | ReadBackDigits
    | MaskRecording
    | UnmaskRecording
    | ProcessPayment
    | Finish
    | ReturnCall
)
