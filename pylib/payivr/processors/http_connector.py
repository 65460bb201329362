"""The generic HTTP connector: any gateway behind one documented JSON-over-HTTPS call.

Contract (docs/processors.md has the full text and examples):

- `POST <url>` with `Content-Type: application/json`, `Idempotency-Key: <key>`,
  `X-Payivr-Key-Id` (when configured) and `X-Payivr-Signature: t=<unix>,v1=<hex>`,
  the HMAC-SHA256 with the connector secret of `"<t>.<raw body>"` (the callback
  signature scheme of SPEC 7).
- Body: `version`, `operation` (`sale`, `sale_tokenize`, `tokenize`, `token_sale`,
  `reverse`), `idempotency_key`, `merchant`, `order`, `amount`, `currency`,
  `description`, `card` (`number`, `expiry` MMYY, `cvv`) or null, `token`,
  `token_reference`.
- Answer: 200 with a signed JSON body (same header) holding `idempotency_key` (echoed),
  `result` (`approved`/`declined`/`failed`), `auth_code`, `token`, `error_code`,
  `processor_code`. The gateway must answer a repeated idempotency key with its first
  answer and never charge twice; for `reverse` it answers `approved` once nothing stays
  charged for the key.

Anything else (a missing or wrong signature, a stale timestamp, another key echoed,
a body that is not the documented JSON) is untrustworthy: `failed`, then reversed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from payivr.core.processor import ChargeRequest, Operation, ProcessorAnswer, ResultCode
from payivr.core.reasons import PROCESSOR_REASONS, Reason
from payivr.core.signature import sign_callback, verify_callback
from payivr.processors.base import HttpAdapter, SecretText, status_failure
from payivr.processors.memo import AnswerMemo
from payivr.processors.outcome import RAW_BAD_SIGNATURE, RAW_MALFORMED, failed
from payivr.processors.transport import HttpAnswer

log = logging.getLogger("payivr.processors.http")

CONTRACT_VERSION = 1
SIGNATURE_HEADER = "X-Payivr-Signature"
KEY_ID_HEADER = "X-Payivr-Key-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_WINDOW_S = 300

_RESULTS = {
    "approved": ResultCode.APPROVED,
    "declined": ResultCode.DECLINED,
    "failed": ResultCode.FAILED,
}
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,64}")


@dataclass(frozen=True)
class HttpConnectorSettings:
    """Where the connector is and how payivr signs for it (see docs/processors.md)."""

    url: str
    secret: SecretText
    key_id: str | None = None
    reverse_enabled: bool = True
    verify_tls: bool | str = True

    def __repr__(self) -> str:
        return f"HttpConnectorSettings(url={self.url!r}, key_id={self.key_id!r})"


def settings_from_options(options: Mapping[str, object]) -> HttpConnectorSettings:
    """Settings from a validated `processor:` section of type `http`."""
    secret = options["secret"]
    if not callable(getattr(secret, "value", None)):
        raise ValueError("secret must be a resolved secret reference")
    key_id = options.get("key_id")
    ca_file = options.get("ca_file")
    return HttpConnectorSettings(
        url=str(options["url"]),
        secret=secret,  # type: ignore[arg-type]
        key_id=str(key_id) if key_id else None,
        reverse_enabled=bool(options.get("reverse_on_timeout", True)),
        verify_tls=str(ca_file) if ca_file else True,
    )


def request_body(request: ChargeRequest, *, operation: str) -> dict[str, object]:
    """The documented request object (holds card digits for card operations).

    A token sale's `card` is null, or carries only `cvv` when the caller keyed one
    (`capture.token_sale_cvv`), as the contract allows."""
    card: dict[str, str | None] | None = None
    cvv = request.cvv
    if operation != "reverse" and request.card is None and cvv is not None:
        if cvv.wiped:
            raise ValueError("the security code was already wiped")
        if len(cvv):
            card = {"number": None, "expiry": None, "cvv": cvv.reveal()}
    if operation != "reverse" and request.card is not None:
        c = request.card
        if c.wiped:
            raise ValueError("card details were already wiped")
        card = {
            "number": c.pan.reveal() if request.operation.captures_card else None,
            "expiry": c.expiry.reveal() if request.operation.captures_card else None,
            "cvv": c.cvv.reveal() if c.cvv is not None and len(c.cvv) else None,
        }
    body: dict[str, object] = {
        "version": CONTRACT_VERSION,
        "operation": operation,
        "idempotency_key": request.idempotency_key,
        "merchant": request.merchant,
        "order": request.order,
        "amount": 0 if request.operation is Operation.TOKENIZE else request.amount,
        "currency": request.currency,
        "description": request.description,
        "card": card,
        "token": request.token if request.operation is Operation.TOKEN_SALE else None,
        "token_reference": request.token_reference,
    }
    if operation == "reverse":
        body["original_operation"] = request.operation.value
    return body


class HttpConnectorProcessor(HttpAdapter):
    """`Processor` speaking the generic connector contract."""

    label = "connector"
    log = log
    settings: HttpConnectorSettings

    def __init__(
        self,
        settings: HttpConnectorSettings,
        *,
        memo: AnswerMemo | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(memo)
        self.settings = settings
        self._clock = clock

    def __repr__(self) -> str:
        return f"HttpConnectorProcessor({self.settings!r})"

    def _charge(self, request: ChargeRequest) -> ProcessorAnswer:
        if request.operation.captures_card and request.card is None:
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-request")
        if request.operation is Operation.TOKEN_SALE and not request.token:
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-request")
        return self._call(request, request.operation.value)

    def _reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        return self._call(request, "reverse")

    def _call(self, request: ChargeRequest, operation: str) -> ProcessorAnswer:
        try:
            body = json.dumps(request_body(request, operation=operation)).encode("utf-8")
        except ValueError:
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-request")
        secret = self.settings.secret.value().encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            IDEMPOTENCY_HEADER: request.idempotency_key,
            SIGNATURE_HEADER: sign_callback(secret, body, int(self._clock())),
        }
        if self.settings.key_id:
            headers[KEY_ID_HEADER] = self.settings.key_id
        # `body` holds the card digits and, being bytes, cannot be wiped: it is never
        # logged, cached or put in an exception, and is released when this returns.
        http = self._post(self.settings.url, body, headers, request)
        if isinstance(http, ProcessorAnswer):
            return http
        answer = self._read(http, request, secret, reversal=operation == "reverse")
        return self._logged(operation, request, answer)

    def _read(
        self, http: HttpAnswer, request: ChargeRequest, secret: bytes, *, reversal: bool
    ) -> ProcessorAnswer:
        bad_status = status_failure(http)
        if bad_status is not None:
            return bad_status
        header = next(
            (v for k, v in http.headers.items() if k.lower() == SIGNATURE_HEADER.lower()), ""
        )
        if not verify_callback(secret, http.body, header, self._clock(), SIGNATURE_WINDOW_S):
            return failed(Reason.PROCESSOR_ERROR, RAW_BAD_SIGNATURE)
        try:
            doc = json.loads(http.body)
        except ValueError:
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        if not isinstance(doc, dict) or doc.get("idempotency_key") != request.idempotency_key:
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        result = _RESULTS.get(str(doc.get("result")))
        if result is None:
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        raw = _printable(doc.get("processor_code")) or _printable(doc.get("error_code"))
        error_code = doc.get("error_code")
        if result is ResultCode.APPROVED:
            if reversal:
                nothing = error_code == Reason.NOTHING_TO_REVERSE
                reason = Reason.NOTHING_TO_REVERSE if nothing else None
                return ProcessorAnswer(ResultCode.APPROVED, reason, None, None, raw)
            token = _printable(doc.get("token")) if request.operation.returns_token else None
            if request.operation is Operation.TOKENIZE and not token:
                return failed(Reason.PROCESSOR_ERROR, "payivr:no-token")
            return ProcessorAnswer(
                ResultCode.APPROVED, None, _printable(doc.get("auth_code")), token, raw
            )
        # A gateway's error_code passes through when it is one of ours; anything else
        # is kept as the raw code only, and the result gets its generic reason.
        if isinstance(error_code, str) and error_code in PROCESSOR_REASONS:
            reason = Reason(error_code)
        else:
            reason = (
                Reason.CARD_DECLINED if result is ResultCode.DECLINED else Reason.PROCESSOR_ERROR
            )
        return ProcessorAnswer(result, reason, None, None, raw)


def _printable(value: object) -> str | None:
    # Codes and tokens end up in headers and Redis: short printable ASCII only.
    if isinstance(value, str) and _PRINTABLE.fullmatch(value):
        return value
    return None
