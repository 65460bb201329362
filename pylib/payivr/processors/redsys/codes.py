"""Redsys answers mapped to SPEC section 7 results and reasons.

`Ds_Response` is a four-digit code: 0000-0099 authorise a payment, 0400 (and 0481)
accept a cancellation ("anulación"), 0900 a refund or confirmation; 01xx and 02xx are
issuer refusals, 09xx and 9xxx errors. A REST call that Redsys cannot process at all
answers `{"errorCode": "SISxxxx"}` instead, unsigned.

The raw code is always kept (`ProcessorAnswer.raw_code`) for operators; the caller
only ever hears the mapped reason. Sources: docs/processors.md.
"""

from __future__ import annotations

from payivr.core.processor import ResultCode
from payivr.core.reasons import Reason

# Issuer refusals worth telling apart; every other 01xx/02xx is a plain decline
# (lost/stolen/fraud suspicions in particular are never told to a caller).
_DECLINES: dict[int, Reason] = {
    101: Reason.CARD_EXPIRED,  # tarjeta caducada
    201: Reason.CARD_EXPIRED,
    116: Reason.INSUFFICIENT_FUNDS,  # disponible insuficiente
    118: Reason.INVALID_CARD,  # tarjeta no registrada
    125: Reason.INVALID_CARD,  # tarjeta no efectiva
    180: Reason.INVALID_CARD,  # tarjeta ajena al servicio
    191: Reason.INVALID_CARD,  # fecha de caducidad errónea
    129: Reason.INVALID_CARD,  # código de seguridad (CVV2/CVC2) incorrecto
    280: Reason.INVALID_CARD,
}

# Errors that say something about the card rather than about Redsys.
_ERROR_DECLINES: dict[int, Reason] = {
    9064: Reason.INVALID_CARD,  # número de posiciones de la tarjeta incorrecto
    9093: Reason.INVALID_CARD,  # tarjeta no existente
    9253: Reason.INVALID_CARD,  # tarjeta no cumple el check-digit
    9078: Reason.CARD_DECLINED,  # tipo de operación no permitida para esa tarjeta
}

# `errorCode` values of a request Redsys refused to process.
_SIS_ERRORS: dict[str, tuple[ResultCode, Reason]] = {
    "SIS0051": (ResultCode.FAILED, Reason.DUPLICATE_ORDER),  # número de pedido repetido
}

APPROVED_RANGE = range(0, 100)
REVERSAL_ACCEPTED = frozenset({400, 481})
# "Original transaction not located": nothing was charged, so nothing to reverse.
REVERSAL_NOTHING_TO_DO = frozenset({480, 501, 502, 503})


def parse_response_code(raw: object) -> int | None:
    """`Ds_Response` as an int, or None when it is not a 1-4 digit code."""
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    if not (1 <= len(text) <= 4 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def map_charge_response(code: int) -> tuple[ResultCode, Reason | None]:
    """Result and reason of a charge (sale, tokenisation, token sale) for `Ds_Response`."""
    if code in APPROVED_RANGE:
        return ResultCode.APPROVED, None
    if code == 913:  # pedido repetido
        return ResultCode.FAILED, Reason.DUPLICATE_ORDER
    if code in _ERROR_DECLINES:
        return ResultCode.DECLINED, _ERROR_DECLINES[code]
    if 100 <= code < 300:
        return ResultCode.DECLINED, _DECLINES.get(code, Reason.CARD_DECLINED)
    return ResultCode.FAILED, Reason.PROCESSOR_ERROR


def map_reversal_response(code: int) -> tuple[ResultCode, Reason | None]:
    """Result of a cancellation: approved when voided or when nothing was charged."""
    if code in REVERSAL_ACCEPTED:
        return ResultCode.APPROVED, None
    if code in REVERSAL_NOTHING_TO_DO:
        return ResultCode.APPROVED, Reason.NOTHING_TO_REVERSE
    return ResultCode.FAILED, Reason.PROCESSOR_ERROR


def map_error_code(error_code: str) -> tuple[ResultCode, Reason]:
    """Result and reason of an unprocessed request (`{"errorCode": "SIS...."}`)."""
    return _SIS_ERRORS.get(error_code, (ResultCode.FAILED, Reason.PROCESSOR_ERROR))
