"""The reasons a payment result carries (SPEC 7): one list, used everywhere.

A reason is a stable, machine-readable id: the same text shows up in logs, in
`X-Pay-Reason`, in callbacks and in docs/SPEC.md's reason table (a test keeps that
table and this enum equal). Code that sets a reason names it here, so a typo is an
AttributeError rather than a new reason nobody documented.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PROCESSOR_REASONS", "Reason"]


class Reason(StrEnum):
    """Why a payment was not approved (or, for a reversal, what there was to undo)."""

    # The processor's answer (docs/processors.md maps each processor's codes).
    CARD_DECLINED = "card-declined"
    INSUFFICIENT_FUNDS = "insufficient-funds"
    CARD_EXPIRED = "card-expired"
    INVALID_CARD = "invalid-card"
    DUPLICATE_ORDER = "duplicate-order"
    PROCESSOR_ERROR = "processor-error"
    PROCESSOR_TIMEOUT = "processor-timeout"
    NOTHING_TO_REVERSE = "nothing-to-reverse"
    # The call.
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    CALLER_HANGUP = "caller-hangup"
    CANCELLED_BY_AGENT = "cancelled-by-agent"
    # payivr itself.
    SESSION_NOT_FOUND = "session-not-found"
    SESSION_ALREADY_USED = "session-already-used"
    MERCHANT_UNKNOWN = "merchant-unknown"
    IVR_UNAVAILABLE = "ivr-unavailable"
    INTERNAL_ERROR = "internal-error"


# What a processor adapter may answer with; the generic connector passes these
# through from its gateway's `error_code` and maps anything else.
PROCESSOR_REASONS = frozenset(
    {
        Reason.CARD_DECLINED,
        Reason.INSUFFICIENT_FUNDS,
        Reason.CARD_EXPIRED,
        Reason.INVALID_CARD,
        Reason.DUPLICATE_ORDER,
        Reason.PROCESSOR_ERROR,
        Reason.PROCESSOR_TIMEOUT,
        Reason.NOTHING_TO_REVERSE,
    }
)
