"""What the flow engine asks its driver to do (carried out by payivr.execution).

Frozen dataclasses, like the capture plan's commands. None carries a secure value in
a printable field: the validator refuses templates that would put one in a prompt,
a spoken text, a transfer header, a comment or an event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlayPrompt:
    """Play the flow's recorded prompt ``name`` in ``language``."""

    flow: str
    name: str
    language: str


@dataclass(frozen=True)
class SayValue:
    """Say ``value`` with FreeSWITCH's say module: ``kind`` is ``number`` (one
    thousand two hundred), ``digits`` (one two zero zero: ticket ids) or ``date``
    (an ISO 8601 date or time stamp, said as a date)."""

    kind: str
    value: str
    language: str


@dataclass(frozen=True)
class Speak:
    """Say dynamic ``text`` with the offline text-to-speech (cached per text)."""

    text: str
    language: str


@dataclass(frozen=True)
class CollectKeys:
    """Play the prompt (if any) and collect DTMF keys that are not card data (a menu
    choice, an order number). Answered by ``KeysEntered`` or ``NoInput``."""

    flow: str
    prompt: str | None
    language: str
    min_digits: int
    max_digits: int
    timeout_ms: int
    digit_timeout_ms: int
    terminators: str = "#"


@dataclass(frozen=True)
class HttpRequest:
    """One request through the named connector (its base URL, auth and timeouts).
    Answered by ``HttpAnswered`` or ``HttpFailed``."""

    connector: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: object = None


@dataclass(frozen=True)
class EnterQueue:
    """Wait in ``queue`` (hearing ``music``) until an agent answers and the talk
    ends, the caller hangs up, or ``timeout_s`` passes. Answered by ``QueueLeft``."""

    queue: str
    music: str
    timeout_s: int
    # A wait announcement: this prompt, over the music, every `chime_every_s`.
    chime: PlayPrompt | None = None
    chime_every_s: int = 0


@dataclass(frozen=True)
class Transfer:
    """Hand the call to ``uri`` with ``headers`` (X- headers on the INVITE/REFER);
    ``payment_headers``: add the signed X-Pay-* result headers of the flow's last
    payment, as a transferred payment's return carries them."""

    uri: str
    headers: tuple[tuple[str, str], ...] = ()
    payment_headers: bool = False


@dataclass(frozen=True)
class HangUp:
    """End the call (after the prompts before it have played)."""

    cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True)
class StartPayment:
    """Take a payment with the capture plan (SPEC section 6), in this call. The
    driver creates the payment session as Kamailio would for a transferred payment;
    result, outbox callback and events are those of a transferred payment. Answered
    by ``PaymentDone``."""

    merchant: str
    operation: str
    amount: str
    currency: str
    order: str
    language: str
    description: str = ""
    callback_url: str = ""


@dataclass(frozen=True)
class PostComment:
    """Queue a comment on a ticket through the connector's durable outbox (it is
    delivered, retried, after the call; never lost when the service is down)."""

    connector: str
    ticket_id: str
    body: str


@dataclass(frozen=True)
class PublishEvent:
    """Append one flow event to ``payivr:events`` (names and verdicts only)."""

    name: str
    fields: tuple[tuple[str, str], ...]


FlowCommand = (
    PlayPrompt
    | SayValue
    | Speak
    | CollectKeys
    | HttpRequest
    | EnterQueue
    | Transfer
    | HangUp
    | StartPayment
    | PostComment
    | PublishEvent
)
