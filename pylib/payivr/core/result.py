"""Results of SPEC section 7: codes, SIP result headers, the callback body.

Reasons are `payivr.core.reasons.Reason`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from payivr.core.processor import Operation, ProcessorAnswer, ResultCode
from payivr.core.request import PaymentRequest
from payivr.core.signature import sign, verify

__all__ = [
    "RESULT_HEADERS",
    "Outcome",
    "PaymentResult",
    "ResultCode",
    "build_result",
    "callback_body",
    "callback_payload",
    "iso",
    "result_headers",
    "verify_result_headers",
]

RESULT_HEADERS: tuple[str, ...] = (
    "X-Pay-Result",
    "X-Pay-Reason",
    "X-Pay-Session",
    "X-Pay-Order",
    "X-Pay-Operation",
    "X-Pay-Amount",
    "X-Pay-Currency",
    "X-Pay-Auth-Code",
    "X-Pay-Token",
    "X-Pay-Card",
    "X-Pay-Card-Brand",
    "X-Pay-Timestamp",
    "X-Pay-Signature",
)
SIGNED_RESULT_HEADERS = frozenset(h.lower() for h in RESULT_HEADERS) - {"x-pay-signature"}


def iso(moment: datetime) -> str:
    """`2026-11-21T10:00:00Z`: UTC, whole seconds, as the callback shows."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Outcome:
    """How a payment ended, before session bookkeeping is attached (the plan's view)."""

    code: ResultCode
    reason: str | None = None
    auth_code: str | None = None
    token: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    raw_code: str | None = None

    @classmethod
    def cancelled(
        cls, reason: str, *, brand: str | None = None, last4: str | None = None
    ) -> Outcome:
        return cls(ResultCode.CANCELLED, reason, card_brand=brand, card_last4=last4)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(ResultCode.FAILED, reason)

    @classmethod
    def from_answer(
        cls, answer: ProcessorAnswer, *, brand: str | None, last4: str | None
    ) -> Outcome:
        # Never "approved" unless the processor said so: the code is copied, not inferred.
        return cls(
            answer.code,
            None if answer.code is ResultCode.APPROVED else answer.reason,
            answer.auth_code if answer.code is ResultCode.APPROVED else None,
            answer.token,
            brand,
            last4,
            answer.raw_code,
        )


@dataclass(frozen=True)
class PaymentResult:
    event_id: str
    session_id: str
    merchant: str
    order: str
    operation: Operation
    code: ResultCode
    reason: str | None
    amount: int
    currency: str
    auth_code: str | None
    token: str | None
    card_brand: str | None
    card_last4: str | None
    created_at: str
    completed_at: str
    raw_code: str | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["operation"] = str(self.operation)
        data["code"] = str(self.code)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PaymentResult:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        amount = data.get("amount", 0)
        return cls(
            event_id=str(data["event_id"]),
            session_id=str(data["session_id"]),
            merchant=str(data["merchant"]),
            order=str(data["order"]),
            operation=Operation(str(data["operation"])),
            code=ResultCode(str(data["code"])),
            reason=opt("reason"),
            amount=int(amount) if isinstance(amount, int | str) else 0,
            currency=str(data["currency"]),
            auth_code=opt("auth_code"),
            token=opt("token"),
            card_brand=opt("card_brand"),
            card_last4=opt("card_last4"),
            created_at=str(data["created_at"]),
            completed_at=str(data["completed_at"]),
            raw_code=opt("raw_code"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> PaymentResult:
        return cls.from_dict(json.loads(text))


def build_result(
    request: PaymentRequest,
    *,
    session_id: str,
    event_id: str,
    created_at: datetime,
    completed_at: datetime,
    outcome: Outcome,
) -> PaymentResult:
    # The token echoed back is the processor's for tokenizing operations, and the
    # charged token for token_sale (so the CC can match it).
    token = outcome.token if request.operation.returns_token else request.token
    return PaymentResult(
        event_id=event_id,
        session_id=session_id,
        merchant=request.merchant,
        order=request.order,
        operation=request.operation,
        code=outcome.code,
        reason=outcome.reason,
        amount=request.amount,
        currency=request.currency,
        auth_code=outcome.auth_code,
        token=token if outcome.code is ResultCode.APPROVED else None,
        card_brand=outcome.card_brand,
        card_last4=outcome.card_last4,
        created_at=iso(created_at),
        completed_at=iso(completed_at),
        raw_code=outcome.raw_code,
    )


def result_headers(
    result: PaymentResult, secret: bytes, call_id: str, now: int
) -> list[tuple[str, str]]:
    """The SIP headers of SPEC section 7, signed with the returning call's Call-ID."""
    values: dict[str, str | None] = {
        "X-Pay-Result": str(result.code),
        "X-Pay-Reason": result.reason if result.code is not ResultCode.APPROVED else None,
        "X-Pay-Session": result.session_id,
        "X-Pay-Order": result.order,
        "X-Pay-Operation": str(result.operation),
        "X-Pay-Amount": str(result.amount),
        "X-Pay-Currency": result.currency,
        "X-Pay-Auth-Code": result.auth_code,
        "X-Pay-Token": result.token,
        "X-Pay-Card": ("*" * 12 + result.card_last4) if result.card_last4 else None,
        "X-Pay-Card-Brand": result.card_brand,
        "X-Pay-Timestamp": str(now),
    }
    headers = {k: v for k, v in values.items() if v}
    headers["X-Pay-Signature"] = sign(secret, headers, call_id, SIGNED_RESULT_HEADERS)
    return list(headers.items())


def verify_result_headers(headers: Iterable[tuple[str, str]], secret: bytes, call_id: str) -> bool:
    """Check result headers as the contact center does: the signature over the signed
    headers present and the returning call's Call-ID."""
    fields = {name.lower(): value for name, value in headers}
    signature = fields.get("x-pay-signature", "")
    return verify(secret, fields, call_id, signature, SIGNED_RESULT_HEADERS)


def callback_payload(result: PaymentResult) -> dict[str, object]:
    """The JSON object of SPEC section 7 (raw processor codes stay out of it)."""
    card = {"brand": result.card_brand, "last4": result.card_last4} if result.card_last4 else None
    return {
        "event_id": result.event_id,
        "session_id": result.session_id,
        "merchant": result.merchant,
        "order": result.order,
        "operation": str(result.operation),
        "result": str(result.code),
        "reason": result.reason,
        "amount": result.amount,
        "currency": result.currency,
        "auth_code": result.auth_code,
        "token": result.token,
        "card": card,
        "created_at": result.created_at,
        "completed_at": result.completed_at,
    }


def callback_body(result: PaymentResult) -> bytes:
    """The exact bytes POSTed and signed: compact JSON, keys in SPEC order."""
    return json.dumps(callback_payload(result), separators=(",", ":")).encode("utf-8")
