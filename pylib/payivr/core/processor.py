"""The processor interface: what payivr asks a payment processor, and what it hears.

Processors are synchronous; the ESL application runs them in a worker thread with the
merchant's timeout, so an adapter only has to honour `ChargeRequest.timeout_s` on its
own network calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from payivr.core.secrets import CardDetails, SecretDigits


class Operation(StrEnum):
    SALE = "sale"
    SALE_TOKENIZE = "sale_tokenize"
    TOKENIZE = "tokenize"
    TOKEN_SALE = "token_sale"  # noqa: S105 (an operation name, not a password)

    @property
    def captures_card(self) -> bool:
        return self is not Operation.TOKEN_SALE

    @property
    def charges(self) -> bool:
        return self is not Operation.TOKENIZE

    @property
    def returns_token(self) -> bool:
        return self in (Operation.SALE_TOKENIZE, Operation.TOKENIZE)


class ResultCode(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ProcessorTimeout(Exception):
    """The processor did not answer within the merchant's timeout."""


def idempotency_key(merchant: str, order: str) -> str:
    """Same merchant + order -> same key, so a retried call can never charge twice."""
    digest = hashlib.sha256(f"payivr:v1:{merchant}:{order}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class ChargeRequest:
    """One processor call. `card` is None for token_sale (charge a stored token)."""

    merchant: str
    order: str
    operation: Operation
    amount: int
    currency: str
    description: str | None
    idempotency_key: str
    timeout_s: float
    card: CardDetails | None = field(default=None, repr=False)
    token: str | None = None
    token_reference: str | None = None
    # The security code keyed for a token_sale where the merchant asks for one
    # (capture.token_sale_cvv); card sales carry theirs inside `card`.
    cvv: SecretDigits | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ProcessorAnswer:
    """What the processor said, mapped to SPEC section 7.

    `raw_code` is the processor's own code, kept on the session for operators and
    never said to the caller.
    """

    code: ResultCode
    reason: str | None = None
    auth_code: str | None = None
    token: str | None = None
    raw_code: str | None = None


class Processor(Protocol):
    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        """Run the request's operation; raise ProcessorTimeout past request.timeout_s."""
        ...

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        """Void whatever `request` may have done (used after a timeout)."""
        ...
