"""The requests the tests build again and again: one builder each, every field overridable.

Card data is built fresh on every call: a test that wipes its card cannot reach
another test's.
"""

from __future__ import annotations

from typing import Any

from payivr.core.processor import ChargeRequest, Operation, idempotency_key
from payivr.core.request import PaymentRequest, ReturnTarget
from payivr.core.secrets import CardDetails, SecretDigits

VISA = "4111111111111111"
EXPIRY_MMYY = "0731"  # as the caller keys it
CVV = "582"


def payment_request(**changes: Any) -> PaymentRequest:
    """A SPEC 3 request as admission produces it: acme, a 12.50 EUR sale, back by hang-up."""
    fields: dict[str, Any] = {
        "merchant": "acme",
        "operation": Operation.SALE,
        "order": "A1001",
        "amount": 1250,
        "currency": "EUR",
        "language": "en",
        "return_to": ReturnTarget("hangup"),
        "call_id": "call-1@cti",
    }
    fields.update(changes)
    return PaymentRequest(**fields)


def card(
    pan: str = VISA, *, expiry: str = EXPIRY_MMYY, cvv: str | None = CVV, brand: str = "visa"
) -> CardDetails:
    return CardDetails(
        SecretDigits(pan), SecretDigits(expiry), SecretDigits(cvv) if cvv else None, brand
    )


def charge_request(
    order: str = "A1001",
    *,
    operation: Operation = Operation.SALE,
    pan: str | None = VISA,
    expiry: str = EXPIRY_MMYY,
    card_cvv: str | None = CVV,
    merchant: str = "acme",
    **changes: Any,
) -> ChargeRequest:
    """A processor call for `order` (its idempotency key follows), with a card unless
    `pan` is None; any other ChargeRequest field by keyword (`cvv` is a token sale's)."""
    fields: dict[str, Any] = {
        "merchant": merchant,
        "order": order,
        "operation": operation,
        "amount": 1250,
        "currency": "EUR",
        "description": None,
        "idempotency_key": idempotency_key(merchant, order),
        "timeout_s": 1.0,
        "card": card(pan, expiry=expiry, cvv=card_cvv) if pan is not None else None,
    }
    fields.update(changes)
    return ChargeRequest(**fields)
