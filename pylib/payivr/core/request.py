"""The payment request of SPEC section 2: from SIP headers to a typed, validated value.

`collect_headers` turns the headers as received into one value per known header
(duplicates with different values are an error); `parse_request` validates every
field against the merchant's config and raises a `Rejection` naming the header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from payivr.core.config import LANGUAGES, MERCHANT_ID, MerchantConfig
from payivr.core.errors import Rejection, bad_request
from payivr.core.order_rules import check_order
from payivr.core.pan import contains_card_number
from payivr.core.processor import Operation
from payivr.core.siputil import parse_sip_uri
from payivr.core.speech_input import INPUT_MODES, InputMode

# Canonical spelling of every request header of SPEC section 2, keyed by lowercase name.
REQUEST_HEADERS: dict[str, str] = {
    name.lower(): name
    for name in (
        "X-Pay-Merchant",
        "X-Pay-Operation",
        "X-Pay-Order",
        "X-Pay-Amount",
        "X-Pay-Currency",
        "X-Pay-Token",
        "X-Pay-Callback-Url",
        "X-Pay-Return",
        "X-Pay-Agent",
        "X-Pay-Language",
        "X-Pay-Description",
        "X-Pay-Input",
        "X-Pay-Timestamp",
        "X-Pay-Signature",
    )
}
SIGNED_REQUEST_HEADERS = frozenset(REQUEST_HEADERS) - {"x-pay-signature"}

_ORDER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,128}$")


@dataclass(frozen=True)
class ReturnTarget:
    """Where the call goes after the result: end in the IVR, back to the agent, or a URI."""

    kind: Literal["hangup", "agent", "uri"]
    uri: str | None = None

    def __str__(self) -> str:
        return self.kind if self.uri is None else f"{self.kind}:{self.uri}"


@dataclass(frozen=True)
class PaymentRequest:
    merchant: str
    operation: Operation
    order: str
    amount: int
    currency: str
    language: str
    return_to: ReturnTarget
    call_id: str
    token: str | None = None
    callback_url: str | None = None
    agent: str | None = None
    description: str | None = None
    timestamp: int | None = None
    input_mode: InputMode = InputMode.DTMF


def collect_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One value per known `X-Pay-*` header, keyed by lowercase name.

    Names are case-insensitive and values trimmed; an empty value counts as absent;
    unknown `X-Pay-*` headers are dropped. A header repeated with a different value
    is refused (400): which one would the merchant have meant?
    """
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.strip().lower()
        if key not in REQUEST_HEADERS:
            continue
        value = value.strip()
        if not value:
            continue
        if key in out and out[key] != value:
            raise bad_request(REQUEST_HEADERS[key], "appears twice with different values")
        out[key] = value
    return out


def header_name(key: str) -> str:
    return REQUEST_HEADERS.get(key, key)


def merchant_id(fields: Mapping[str, str]) -> str:
    """The merchant id, checked for shape (the lookup is the caller's: 404 vs 400)."""
    value = fields.get("x-pay-merchant")
    if value is None:
        raise bad_request("X-Pay-Merchant", "missing")
    if not MERCHANT_ID.match(value):
        raise bad_request("X-Pay-Merchant", "must be 1-32 of A-Z a-z 0-9 _ -")
    return value


def parse_request(
    fields: Mapping[str, str],
    merchant: MerchantConfig,
    *,
    call_id: str,
    referred_by: str | None = None,
) -> PaymentRequest:
    """Validate the collected fields against the merchant's config (SPEC section 2).

    Raises Rejection (400) naming the first offending header, in table order.
    """
    op_text = fields.get("x-pay-operation")
    if op_text is None:
        raise bad_request("X-Pay-Operation", "missing")
    try:
        operation = Operation(op_text)
    except ValueError:
        raise bad_request(
            "X-Pay-Operation", "must be sale, sale_tokenize, tokenize or token_sale"
        ) from None

    order = fields.get("x-pay-order")
    if order is None:
        raise bad_request("X-Pay-Order", "missing")
    if not _ORDER.match(order):
        raise bad_request("X-Pay-Order", "must be 1-32 of A-Z a-z 0-9 _ -")
    if contains_card_number(order):
        raise bad_request(
            "X-Pay-Order", "looks like a card number: card data never goes in headers"
        )
    narrowed = check_order(merchant.processor.type, order)
    if narrowed is not None:
        raise bad_request("X-Pay-Order", narrowed)

    amount = _amount(fields.get("x-pay-amount"), operation, merchant)
    currency = (fields.get("x-pay-currency") or merchant.default_currency).upper()
    if "x-pay-currency" in fields and not _CURRENCY.match(fields["x-pay-currency"]):
        raise bad_request("X-Pay-Currency", "must be an ISO 4217 alpha code like EUR")
    if currency not in merchant.currencies:
        raise bad_request("X-Pay-Currency", f"{currency} is not accepted for this merchant")

    token = fields.get("x-pay-token")
    if operation is Operation.TOKEN_SALE and token is None:
        raise bad_request("X-Pay-Token", "missing (required for token_sale)")
    if token is not None:
        if contains_card_number(token):
            # A CTI that puts a card number here would leak it into SIP and Redis.
            raise bad_request("X-Pay-Token", "looks like a card number: send a token")
        if not _TOKEN.match(token):
            raise bad_request("X-Pay-Token", "must be 1-128 of A-Z a-z 0-9 _ . : = + / -")

    callback_url = fields.get("x-pay-callback-url")
    if callback_url is not None:
        _check_callback_url(callback_url, merchant)

    agent = fields.get("x-pay-agent")
    if agent is not None:
        parsed = parse_sip_uri(agent)
        if parsed is None:
            raise bad_request("X-Pay-Agent", "must be a sip: or sips: URI")
        agent = str(parsed)
    return_to = _return_target(fields.get("x-pay-return"), agent, referred_by, merchant)

    language = fields.get("x-pay-language", merchant.default_language).lower()
    if language not in LANGUAGES:
        raise bad_request("X-Pay-Language", "must be one of " + ", ".join(LANGUAGES))

    description = fields.get("x-pay-description")
    if description is not None and (len(description) > 64 or not description.isprintable()):
        raise bad_request("X-Pay-Description", "at most 64 printable characters")
    if description is not None and contains_card_number(description):
        raise bad_request("X-Pay-Description", "looks like a card number")

    input_text = fields.get("x-pay-input", merchant.capture.input).lower()
    if input_text not in INPUT_MODES:
        raise bad_request("X-Pay-Input", "must be one of " + ", ".join(INPUT_MODES))

    ts = fields.get("x-pay-timestamp")
    return PaymentRequest(
        merchant=merchant.id,
        operation=operation,
        order=order,
        amount=amount,
        currency=currency,
        language=language,
        return_to=return_to,
        call_id=call_id,
        token=token,
        callback_url=callback_url,
        agent=agent,
        description=description,
        timestamp=int(ts) if ts is not None and ts.isdigit() else None,
        input_mode=InputMode(input_text),
    )


def _amount(text: str | None, operation: Operation, merchant: MerchantConfig) -> int:
    if operation is Operation.TOKENIZE:
        if text is not None and text != "0":
            raise bad_request("X-Pay-Amount", "must be 0 or absent for tokenize")
        return 0
    if text is None:
        raise bad_request("X-Pay-Amount", "missing")
    if not _AMOUNT.match(text):
        raise bad_request("X-Pay-Amount", "must be a whole number of minor units, e.g. 1250")
    amount = int(text)
    if amount == 0:
        raise bad_request("X-Pay-Amount", f"must be greater than 0 for {operation}")
    if amount > merchant.max_amount:
        raise bad_request("X-Pay-Amount", f"above this merchant's limit of {merchant.max_amount}")
    return amount


def _check_callback_url(url: str, merchant: MerchantConfig) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise bad_request("X-Pay-Callback-Url", "not a valid URL") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and merchant.allow_http_callbacks):
        raise bad_request("X-Pay-Callback-Url", "must be an https:// URL")
    if not host:
        raise bad_request("X-Pay-Callback-Url", "has no host")
    if parts.username or parts.password:
        raise bad_request("X-Pay-Callback-Url", "must not carry credentials")
    if not merchant.callback_host_allowed(host):
        raise bad_request("X-Pay-Callback-Url", f"host {host} is not in the callback allowlist")


def _return_target(
    value: str | None, agent: str | None, referred_by: str | None, merchant: MerchantConfig
) -> ReturnTarget:
    header = "X-Pay-Return"
    chosen = value if value is not None else merchant.default_return
    if chosen == "hangup":
        return ReturnTarget("hangup")
    if chosen == "agent":
        target = agent
        if target is None and referred_by:
            parsed = parse_sip_uri(referred_by)
            target = str(parsed) if parsed else None
        if target is None:
            raise bad_request(header, "agent needs X-Pay-Agent or Referred-By")
        _check_return_host(target, merchant, "X-Pay-Agent" if agent else header)
        return ReturnTarget("agent", target)
    parsed = parse_sip_uri(chosen)
    if parsed is None:
        raise bad_request(header, "must be hangup, agent, or a sip:/sips: URI")
    _check_return_host(str(parsed), merchant, header)
    return ReturnTarget("uri", str(parsed))


def _check_return_host(uri: str, merchant: MerchantConfig, header: str) -> None:
    parsed = parse_sip_uri(uri)
    host = parsed.hostname if parsed else ""
    if not merchant.return_host_allowed(host):
        raise Rejection(
            400, "Bad Payment Request", header, f"host {host} is not in the return allowlist"
        )
