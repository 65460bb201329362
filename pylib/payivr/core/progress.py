"""What the agent sees of a payment in progress (SPEC section 9): never a digit.

Agent-assisted mode shows the agent, live, how each field is going: waiting for the
caller, being keyed (how many digits so far), valid or invalid (with the reason),
the card brand once the number is valid, processing, then the result of SPEC 7.

This module turns what the capture plan says and does (its commands, its
``FieldReport`` after each entry, the driver's per-key notices) into
``ProgressEvent`` values. It is pure: the driver publishes the events (Redis stream)
and the agent API relays them (SSE). A ``ProgressEvent`` has no attribute that could
hold a keyed digit: counts, names, verdicts and the result's masked card only.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from payivr.core.plan.commands import Collect, Command, Finish, ProcessPayment
from payivr.core.plan.fields import Field
from payivr.core.plan.machine import FieldReport
from payivr.core.result import PaymentResult, callback_payload

__all__ = [
    "FieldStatus",
    "Kind",
    "ProgressEvent",
    "ProgressTracker",
]


class Kind(enum.StrEnum):
    """Event types on the agent's stream (also the SSE `event:` names)."""

    PAYMENT_STARTED = "payment.started"
    FIELD = "field"
    PROCESSING = "payment.processing"
    RESULT = "payment.result"
    NOTICE = "notice"  # e.g. a restart or cancel the driver could not honour


class FieldStatus(enum.StrEnum):
    WAITING = "waiting"  # the field's prompt is out, nothing keyed yet
    ENTERING = "entering"  # the caller is keying: digit_count says how many so far
    VALID = "valid"
    INVALID = "invalid"  # reason says why; the field is asked again (or the end)
    RESTARTED = "restarted"  # "*" by the caller or the agent's restart


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress. ``to_dict`` is what the API sends; it has no digits."""

    kind: Kind
    payment: str
    field: Field | None = None
    status: FieldStatus | None = None
    digit_count: int | None = None
    attempt: int | None = None
    brand: str | None = None
    reason: str | None = None
    result: Mapping[str, object] | None = None
    info: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"type": str(self.kind), "payment": self.payment}
        optional: dict[str, object | None] = {
            "field": str(self.field) if self.field is not None else None,
            "status": str(self.status) if self.status is not None else None,
            "digit_count": self.digit_count,
            "attempt": self.attempt,
            "brand": self.brand,
            "reason": self.reason,
            "result": dict(self.result) if self.result is not None else None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        data.update(self.info)
        return data


def result_view(result: PaymentResult) -> dict[str, object]:
    """The result as the agent sees it: SPEC 7's callback object (masked card only)."""
    return callback_payload(result)


class ProgressTracker:
    """Follows one payment and says what changed, as ProgressEvents.

    The driver calls ``commands()`` with every batch the plan returns, ``report()``
    with the plan's ``last_field`` after each event, ``key_pressed()`` for each key
    the caller presses in an open field (the driver knows only that a key came, and
    whether it was a digit: the value stays in FreeSWITCH's event, wiped unread),
    and ``finished()`` with the recorded result.
    """

    def __init__(self, payment: str) -> None:
        self.payment = payment
        self.open_field: Field | None = None
        self._count = 0
        self._attempts: dict[Field, int] = {}

    def started(self, operation: str, amount: int, currency: str) -> ProgressEvent:
        return ProgressEvent(
            Kind.PAYMENT_STARTED,
            self.payment,
            info={"operation": operation, "amount": str(amount), "currency": currency},
        )

    def commands(self, commands: Iterable[Command]) -> list[ProgressEvent]:
        """Events for a batch of plan commands: a Collect opens a field, and so on."""
        out: list[ProgressEvent] = []
        for command in commands:
            if isinstance(command, Collect):
                self.open_field = command.field
                self._count = 0
                attempt = self._attempts.get(command.field, 0) + 1
                self._attempts[command.field] = attempt
                out.append(
                    ProgressEvent(
                        Kind.FIELD,
                        self.payment,
                        command.field,
                        FieldStatus.WAITING,
                        digit_count=0,
                        attempt=attempt,
                    )
                )
            elif isinstance(command, ProcessPayment):
                self.open_field = None
                out.append(ProgressEvent(Kind.PROCESSING, self.payment))
        return out

    def key_pressed(self, is_digit: bool) -> ProgressEvent | None:
        """A key in the open field: a digit moves the count; ``*``/``#`` do not."""
        if self.open_field is None or not is_digit:
            return None
        self._count += 1
        return ProgressEvent(
            Kind.FIELD,
            self.payment,
            self.open_field,
            FieldStatus.ENTERING,
            digit_count=self._count,
            attempt=self._attempts.get(self.open_field, 1),
        )

    def report(self, report: FieldReport | None) -> list[ProgressEvent]:
        """The plan's verdict on the entry it just took (``CapturePlan.last_field``)."""
        if report is None:
            return []
        self.open_field = None
        if report.reason in ("restart", "start-again"):
            status = FieldStatus.RESTARTED
        else:
            status = FieldStatus.VALID if report.valid else FieldStatus.INVALID
        return [
            ProgressEvent(
                Kind.FIELD,
                self.payment,
                report.field,
                status,
                digit_count=report.digit_count,
                attempt=self._attempts.get(report.field, 1),
                # The brand belongs to the card number's verdict; later fields repeat it.
                brand=report.brand if report.field is Field.CARD_NUMBER else None,
                reason=report.reason,
            )
        ]

    def finished(self, result: PaymentResult) -> ProgressEvent:
        self.open_field = None
        return ProgressEvent(
            Kind.RESULT,
            self.payment,
            reason=result.reason,
            brand=result.card_brand,
            result=result_view(result),
        )

    def notice(self, what: str, detail: str) -> ProgressEvent:
        return ProgressEvent(Kind.NOTICE, self.payment, info={"notice": what, "detail": detail})

    @staticmethod
    def outcome_of(commands: Iterable[Command]) -> Finish | None:
        """The Finish in a batch, if any (the driver records it)."""
        for command in commands:
            if isinstance(command, Finish):
                return command
        return None
