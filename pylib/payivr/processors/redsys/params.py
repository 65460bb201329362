"""Redsys `Ds_MerchantParameters` for each payivr operation, and the answer's fields.

MOTO (card not present, keyed by phone) requests go to `trataPeticionREST` with the
card fields `DS_MERCHANT_PAN`, `DS_MERCHANT_EXPIRYDATE` (YYMM) and `DS_MERCHANT_CVV2`,
and `DS_MERCHANT_DIRECTPAYMENT=moto`, which marks the operation as a telephone order
(out of SCA scope, so no 3-D Secure step). Tokenisation asks Redsys for a reference
with `DS_MERCHANT_IDENTIFIER=REQUIRED` plus the credential-on-file fields
(`DS_MERCHANT_COF_INI=S`, `DS_MERCHANT_COF_TYPE`); a token sale sends the stored
reference in `DS_MERCHANT_IDENTIFIER` with `DS_MERCHANT_COF_INI=N`, plus
`DS_MERCHANT_CVV2` when the merchant has the caller key the security code for token
sales (`capture.token_sale_cvv`). A zero-amount verification is an authorisation of
amount 0 that requests a reference.

The dictionaries built here hold card digits: callers encode them, send them and drop
them at once, and never log them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from payivr.core.processor import ChargeRequest, Operation

TRANSACTION_AUTHORISATION = "0"
TRANSACTION_CANCELLATION = "9"  # anulación de autorización o preautorización

# ISO 4217 alpha -> numeric, as Redsys wants it (DS_MERCHANT_CURRENCY).
CURRENCIES: dict[str, str] = {
    "EUR": "978",
    "USD": "840",
    "GBP": "826",
    "CHF": "756",
    "JPY": "392",
    "CAD": "124",
    "AUD": "036",
    "SEK": "752",
    "NOK": "578",
    "DKK": "208",
    "PLN": "985",
    "CZK": "203",
    "HUF": "348",
    "MXN": "484",
    "BRL": "986",
    "ARS": "032",
    "CLP": "152",
    "COP": "170",
    "PEN": "604",
    "CNY": "156",
    "INR": "356",
}

DESCRIPTION_MAX = 125  # Ds_Merchant_ProductDescription


class ParameterError(ValueError):
    """The request cannot be expressed for Redsys (message never carries card data)."""


@dataclass(frozen=True)
class Terminal:
    """The merchant's Redsys terminal and how it wants its operations flagged."""

    merchant_code: str
    terminal: str
    moto: bool = True
    cof_type: str = "C"


def _base(terminal: Terminal, request: ChargeRequest, transaction: str) -> dict[str, str]:
    currency = CURRENCIES.get(request.currency.upper())
    if currency is None:
        raise ParameterError("currency not supported by the Redsys adapter")
    return {
        "DS_MERCHANT_MERCHANTCODE": terminal.merchant_code,
        "DS_MERCHANT_TERMINAL": terminal.terminal,
        "DS_MERCHANT_ORDER": request.order,
        "DS_MERCHANT_TRANSACTIONTYPE": transaction,
        "DS_MERCHANT_CURRENCY": currency,
        "DS_MERCHANT_AMOUNT": str(request.amount),
        # Free merchant data, shown in the Redsys portal: the idempotency key travels
        # with every call (the order id is what Redsys deduplicates on).
        "DS_MERCHANT_MERCHANTDATA": f"payivr:{request.idempotency_key}",
    }


def charge_parameters(terminal: Terminal, request: ChargeRequest) -> dict[str, str]:
    """Parameters of ``request.operation`` (holds card digits: encode, send, drop)."""
    params = _base(terminal, request, TRANSACTION_AUTHORISATION)
    op = request.operation
    if op is Operation.TOKENIZE:
        params["DS_MERCHANT_AMOUNT"] = "0"
    if request.description:
        params["DS_MERCHANT_PRODUCTDESCRIPTION"] = request.description[:DESCRIPTION_MAX]
    if terminal.moto:
        params["DS_MERCHANT_DIRECTPAYMENT"] = "moto"
    if op.returns_token:
        params["DS_MERCHANT_IDENTIFIER"] = "REQUIRED"
        params["DS_MERCHANT_COF_INI"] = "S"
        params["DS_MERCHANT_COF_TYPE"] = terminal.cof_type
    if op is Operation.TOKEN_SALE:
        if not request.token:
            raise ParameterError("token_sale without a token")
        params["DS_MERCHANT_IDENTIFIER"] = request.token
        params["DS_MERCHANT_COF_INI"] = "N"
        params["DS_MERCHANT_COF_TYPE"] = terminal.cof_type
        cvv = request.cvv
        if cvv is not None and cvv.wiped:
            raise ParameterError("the security code was already wiped")
        if cvv is not None and len(cvv):
            params["DS_MERCHANT_CVV2"] = cvv.reveal()
    card = request.card
    if op.captures_card and card is None:
        raise ParameterError(f"{op.value} without card details")
    if card is not None:
        if card.wiped:
            raise ParameterError("card details were already wiped")
        if op.captures_card:
            params["DS_MERCHANT_PAN"] = card.pan.reveal()
            expiry = card.expiry.reveal()  # MMYY as keyed
            params["DS_MERCHANT_EXPIRYDATE"] = expiry[2:4] + expiry[0:2]  # Redsys: YYMM
        if card.cvv is not None and len(card.cvv):
            params["DS_MERCHANT_CVV2"] = card.cvv.reveal()
    return params


def cancellation_parameters(terminal: Terminal, request: ChargeRequest) -> dict[str, str]:
    """Parameters voiding whatever ``request`` may have authorised (no card data)."""
    params = _base(terminal, request, TRANSACTION_CANCELLATION)
    if request.operation is Operation.TOKENIZE:
        params["DS_MERCHANT_AMOUNT"] = "0"
    return params


def to_json(params: Mapping[str, str]) -> str:
    """The JSON text that gets Base64-encoded into `Ds_MerchantParameters`."""
    return json.dumps(dict(params), separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Answer:
    """The fields payivr reads from a signed Redsys answer (no card data)."""

    order: str | None
    response: object
    amount: str | None
    auth_code: str | None
    identifier: str | None


def read_answer(decoded: Mapping[str, object]) -> Answer:
    """Pick the fields out of decoded answer parameters, whatever their key case.

    Redsys spells answer keys `Ds_Response`, `Ds_AuthorisationCode`,
    `Ds_Merchant_Identifier`..., but case varies between channels.
    """
    lower = {str(k).lower(): v for k, v in decoded.items()}

    def text(key: str) -> str | None:
        value = lower.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.strip() if isinstance(value, str) and value.strip() else None

    return Answer(
        order=text("ds_order"),
        response=lower.get("ds_response"),
        amount=text("ds_amount"),
        auth_code=text("ds_authorisationcode"),
        identifier=text("ds_merchant_identifier"),
    )
