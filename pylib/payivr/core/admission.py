"""The whole admission decision for a new INVITE (SPEC sections 2-4), pure.

Kamailio's KEMI script gathers headers, body, source address, Call-ID and the number
dialled, calls `admit`, and acts on the decision. Checks run in an order that
authenticates before it explains: merchant -> source -> signature -> fields -> SDP
offer (and SRTP where the merchant requires it) -> replay, so an unsigned peer learns
nothing about what a valid request would look like.

An INVITE without `X-Pay-Merchant` is a call flow's call when its trunk header or
number dialled is an entry point (docs/flows.md): it is relayed without a session
(the flow creates one when it takes a payment) if it comes from one of the entry
point's sources and carries an SDP offer. Any other INVITE without a merchant is
refused as a payment request missing its merchant, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from payivr.core.config import Config, MerchantConfig
from payivr.core.errors import Rejection, forbidden, not_acceptable, unknown_merchant
from payivr.core.flow.settings import EntryPoint
from payivr.core.media_security import check_srtp
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
class MessageBody:
    """The INVITE's body as received: its Content-Type header value and its text."""

    content_type: str
    text: str


NO_BODY = MessageBody("", "")


@dataclass(frozen=True)
class Accept:
    """Admitted. When no replay guard was passed to `admit`, the adapter must claim
    `replay_key` (SET NX with `replay_ttl_s`) atomically with creating the session."""

    request: PaymentRequest
    merchant: MerchantConfig
    replay_key: str | None
    replay_ttl_s: int


@dataclass(frozen=True)
class FlowCall:
    """A call to a flow's entry point from one of its sources: relay it as it is, with
    no payment session and no `X-Pay-*` header (the flow's `pay` creates its own)."""

    entry: EntryPoint


@dataclass(frozen=True)
class Reject:
    rejection: Rejection


Decision = Accept | FlowCall | Reject


def replayed() -> Rejection:
    return forbidden("X-Pay-Signature", "replayed (this Call-ID and signature were seen before)")


def admit(
    headers: Iterable[tuple[str, str]],
    *,
    call_id: str,
    source_ip: str,
    config: Config,
    now: float,
    body: MessageBody,
    replay: ReplayGuard | None = None,
    referred_by: str | None = None,
    dialled: str = "",
    entry_headers: Mapping[str, str] | None = None,
) -> Decision:
    """Decide on one new INVITE. Never raises for anything the peer sent.

    `dialled` is the Request-URI's user; `entry_headers` the values of the trunk
    headers entry points are matched by (`config.flows.header_names()`), by
    lower-case name.
    """
    try:
        fields = collect_headers(headers)
        if "x-pay-merchant" not in fields:
            entry = config.flows.entry_for(dialled, entry_headers or {})
            if entry is not None:
                return _flow_call(entry, source_ip, body)
        return _admit(fields, call_id, source_ip, config, now, body, replay, referred_by)
    except Rejection as rejection:
        return Reject(rejection)


def _flow_call(entry: EntryPoint, source_ip: str, body: MessageBody) -> FlowCall:
    if not entry.source_allowed(source_ip):
        raise forbidden("source", f"{source_ip} may not call entry point {entry.name}")
    # A flow may take a payment: its card tones need the media terms settled up front.
    check_offer(body)
    return FlowCall(entry)


def _admit(
    fields: Mapping[str, str],
    call_id: str,
    source_ip: str,
    config: Config,
    now: float,
    body: MessageBody,
    replay: ReplayGuard | None,
    referred_by: str | None,
) -> Decision:
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
    check_offer(body)
    if merchant.require_srtp:
        check_srtp(body.text, mid)

    # A replay window twice the timestamp window covers a timestamp at either edge.
    ttl = 2 * merchant.signing.window_s
    if key is not None and replay is not None:
        if not replay.first_seen(key, ttl):
            raise replayed()
        key = None
    return Accept(request=request, merchant=merchant, replay_key=key, replay_ttl_s=ttl)


def check_offer(body: MessageBody) -> None:
    """The INVITE must carry its SDP offer (early offer); raise a 488 otherwise.

    An offerless INVITE (late offer) would leave the media terms, SRTP and the
    RFC 2833 events card digits travel as, to be settled in the ACK, after the
    call was admitted and relayed. payivr refuses it here, before any session
    exists, with a Warning telling the integrator what to change (docs/SPEC.md
    section 4, docs/contract-notes.md).
    """
    media_type = body.content_type.split(";", 1)[0].strip().lower()
    if not body.text.strip():
        raise not_acceptable(
            "SDP", "the INVITE has no offer (late offer): send the SDP offer in the INVITE"
        )
    if media_type != "application/sdp" and not (
        media_type.startswith("multipart/") and "application/sdp" in body.text.lower()
    ):
        raise not_acceptable("SDP", "the INVITE body is not an SDP offer (application/sdp)")
    if not any(line.startswith("m=") for line in body.text.splitlines()):
        raise not_acceptable("SDP", "the SDP offer has no media line")
