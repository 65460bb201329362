"""The sandbox processor of SPEC section 8: deterministic, no network.

For demos and tests. Every rule here is documented in ``docs/capture-plan.md`` so
anyone can recompute an answer:

* A card listed in :data:`SANDBOX_CARDS` gets its fixed outcome; the timeout card
  waits ``ChargeRequest.timeout_s`` (through the injected ``sleep``) and then raises
  ``ProcessorTimeout``, as a processor that never answered would.
* Any other Luhn-valid card is approved; a number that fails Luhn is declined
  (``invalid-card``), as a real acquirer would.
* The authorisation code is the last 6 decimal digits of
  ``int(sha256("<order>:<amount>").hexdigest(), 16)``.
* ``sale_tokenize`` / ``tokenize`` return ``tok_`` followed by the first 32 hex
  digits of ``HMAC-SHA256(token_key, "payivr-sandbox-token:<merchant>:<PAN>")`` with
  the hex digits ``0-9a-f`` spelled as the letters ``g-v``: stable for a merchant and
  card within one deployment, and no digit at all, so no part of a PAN (nor anything
  that looks like one) is in it. The key is the deployment's secret
  (``processor.token_secret``): a PAN has so little entropy (a known IIN, the Luhn
  digit, often the last four on a receipt) that an unkeyed hash of it is reversed
  by trying every candidate; without the key a token says nothing about the card.
* ``token_sale`` approves any token of that exact shape and declines anything else
  (``invalid-card``): the sandbox keeps no state, so "known" means "could have come
  from this sandbox".

Responses carry ISO 8583 response codes as ``raw_code`` (``00`` approved, ``05`` do
not honour, ``51`` insufficient funds, ``54`` expired card, ``14`` invalid card,
``96`` system malfunction).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from payivr.core.card import luhn_valid
from payivr.core.processor import (
    ChargeRequest,
    ProcessorAnswer,
    ProcessorTimeout,
    ResultCode,
)
from payivr.core.reasons import Reason

TOKEN_PREFIX = "tok_"  # noqa: S105 (a token prefix, not a secret)
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")
TOKEN_RE = re.compile(r"^tok_[g-v]{32}$")

TIMEOUT_CARD = "4000000000000259"


@dataclass(frozen=True)
class _Fixed:
    code: ResultCode
    reason: Reason
    raw_code: str


# SPEC section 8. Keys are test card numbers, published on purpose.
SANDBOX_CARDS: dict[str, _Fixed] = {
    "4000000000000002": _Fixed(ResultCode.DECLINED, Reason.CARD_DECLINED, "05"),
    "4000000000009995": _Fixed(ResultCode.DECLINED, Reason.INSUFFICIENT_FUNDS, "51"),
    "4000000000000069": _Fixed(ResultCode.DECLINED, Reason.CARD_EXPIRED, "54"),
    "4000000000000119": _Fixed(ResultCode.FAILED, Reason.PROCESSOR_ERROR, "96"),
}


def sandbox_auth_code(order: str, amount: int) -> str:
    """Last 6 decimal digits of the SHA-256 of ``"<order>:<amount>"`` read as a number."""
    digest = hashlib.sha256(f"{order}:{amount}".encode()).hexdigest()
    return f"{int(digest, 16) % 1_000_000:06d}"


MIN_TOKEN_KEY_BYTES = 32


def sandbox_token(key: bytes, merchant: str, pan: str) -> str:
    """``tok_`` + 32 letters of an HMAC-SHA256 under ``key`` of merchant and PAN."""
    message = f"payivr-sandbox-token:{merchant}:{pan}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return TOKEN_PREFIX + digest[:32].translate(_HEX_TO_LETTERS)


class SandboxProcessor:
    """The embedded default processor (``processor: {type: sandbox, token_secret: ...}``)."""

    def __init__(self, token_key: bytes, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if len(token_key) < MIN_TOKEN_KEY_BYTES:
            raise ValueError(f"the sandbox token key needs at least {MIN_TOKEN_KEY_BYTES} bytes")
        self._token_key = token_key
        # Injected so tests of the timeout card need not wait.
        self._sleep = sleep

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        """Answer as SPEC section 8 says; raise ProcessorTimeout for the timeout card."""
        if request.card is None:
            return self._charge_token(request)
        pan = request.card.pan.reveal()
        if not luhn_valid(pan):
            return ProcessorAnswer(ResultCode.DECLINED, Reason.INVALID_CARD, raw_code="14")
        if pan == TIMEOUT_CARD:
            self._sleep(request.timeout_s)
            raise ProcessorTimeout("sandbox: the timeout test card never gets an answer")
        fixed = SANDBOX_CARDS.get(pan)
        if fixed is not None:
            return ProcessorAnswer(fixed.code, fixed.reason, raw_code=fixed.raw_code)
        token = (
            sandbox_token(self._token_key, request.merchant, pan)
            if request.operation.returns_token
            else None
        )
        return ProcessorAnswer(
            ResultCode.APPROVED,
            auth_code=sandbox_auth_code(request.order, request.amount),
            token=token,
            raw_code="00",
        )

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        """Voiding always works in the sandbox (it never really charged anything)."""
        return ProcessorAnswer(ResultCode.APPROVED, raw_code="00")

    def _charge_token(self, request: ChargeRequest) -> ProcessorAnswer:
        if request.token is None or not TOKEN_RE.match(request.token):
            return ProcessorAnswer(ResultCode.DECLINED, Reason.INVALID_CARD, raw_code="14")
        return ProcessorAnswer(
            ResultCode.APPROVED,
            auth_code=sandbox_auth_code(request.order, request.amount),
            raw_code="00",
        )
