"""The whole admission decision for a payment INVITE (SPEC sections 2-4), pure.

Kamailio's KEMI script gathers headers, source address and Call-ID, calls `admit`,
and acts on the decision. Checks run in an order that authenticates before it
explains: merchant -> source -> signature -> fields -> replay, so an unsigned peer
learns nothing about what a valid request would look like.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from payivr.core.config import Config, MerchantConfig
from payivr.core.errors import Rejection, forbidden, unknown_merchant
from payivr.core.replay import ReplayGuard, replay_key
from payivr.core.request import (
    SIGNED_REQUEST_HEADERS,
    PaymentRequest,
    collect_headers,
    merchant_id,
    parse_request,
)
from payivr.core.signature import timestamp_fresh, verify


@dataclass(frozen=True)
class Accept:
    """Admitted. When no replay guard was passed to `admit`, the adapter must claim
    `replay_key` (SET NX with `replay_ttl_s`) atomically with creating the session."""

    request: PaymentRequest
    merchant: MerchantConfig
    replay_key: str | None
    replay_ttl_s: int


@dataclass(frozen=True)
class Reject:
    rejection: Rejection


Decision = Accept | Reject


def replayed() -> Rejection:
    return forbidden("X-Pay-Signature", "replayed (this Call-ID and signature were seen before)")


def admit(
    headers: Iterable[tuple[str, str]],
    *,
    call_id: str,
    source_ip: str,
    config: Config,
    now: float,
    replay: ReplayGuard | None = None,
    referred_by: str | None = None,
) -> Decision:
    """Decide on one payment INVITE. Never raises for anything the peer sent."""
    try:
        return _admit(headers, call_id, source_ip, config, now, replay, referred_by)
    except Rejection as rejection:
        return Reject(rejection)


def _admit(
    headers: Iterable[tuple[str, str]],
    call_id: str,
    source_ip: str,
    config: Config,
    now: float,
    replay: ReplayGuard | None,
    referred_by: str | None,
) -> Decision:
    fields = collect_headers(headers)
    mid = merchant_id(fields)
    merchant = config.merchant(mid)
    if merchant is None:
        raise unknown_merchant("X-Pay-Merchant", f"{mid} is not a known merchant")
    if not merchant.source_allowed(source_ip):
        raise forbidden("source", f"{source_ip} may not send payments for {mid}")

    key: str | None = None
    if merchant.signing.required:
        signature = fields.get("x-pay-signature")
        if signature is None:
            raise forbidden("X-Pay-Signature", "missing (signing is required)")
        ts = fields.get("x-pay-timestamp")
        if ts is None:
            raise forbidden("X-Pay-Timestamp", "missing (signing is required)")
        if not ts.isdigit():
            raise forbidden("X-Pay-Timestamp", "must be Unix seconds")
        if not timestamp_fresh(int(ts), now, merchant.signing.window_s):
            raise forbidden("X-Pay-Timestamp", "outside the signature window (stale or clock skew)")
        secret = merchant.signing_secret.encode()
        if not verify(secret, fields, call_id, signature, SIGNED_REQUEST_HEADERS):
            raise forbidden("X-Pay-Signature", "does not match")
        key = replay_key(mid, call_id, signature)

    request = parse_request(fields, merchant, call_id=call_id, referred_by=referred_by)

    # A replay window twice the timestamp window covers a timestamp at either edge.
    ttl = 2 * merchant.signing.window_s
    if key is not None and replay is not None:
        if not replay.first_seen(key, ttl):
            raise replayed()
        key = None
    return Accept(request=request, merchant=merchant, replay_key=key, replay_ttl_s=ttl)
