"""Redsys REST adapter (`trataPeticionREST`) for MOTO payments keyed by phone.

One signed JSON POST per operation: `{"Ds_SignatureVersion", "Ds_MerchantParameters",
"Ds_Signature"}`. The answer is trusted only after its signature verifies with the
per-order key of *our* order and its `Ds_Order` is that order; otherwise it is treated
as unknown: `failed`, and `charge_and_settle` voids the order (transaction type 9).

Idempotency: the order id is the idempotency unit at Redsys, which refuses a repeated
order (`SIS0051` / `Ds_Response` 0913). A retry in this process gets the first answer
from memory; a retry elsewhere gets `failed`/`duplicate-order`, never a second charge.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from payivr.core.processor import ChargeRequest, Operation, ProcessorAnswer, ResultCode
from payivr.core.reasons import Reason
from payivr.processors.base import HttpAdapter, SecretText, status_failure
from payivr.processors.memo import AnswerMemo
from payivr.processors.outcome import RAW_BAD_SIGNATURE, RAW_MALFORMED, failed
from payivr.processors.redsys import codes
from payivr.processors.redsys.crypto import (
    SignatureKeyError,
    SignatureVersion,
    decode_parameters,
    encode_parameters,
    sign,
    verify,
)
from payivr.processors.redsys.params import (
    ParameterError,
    Terminal,
    cancellation_parameters,
    charge_parameters,
    read_answer,
    to_json,
)
from payivr.processors.transport import HttpAnswer

log = logging.getLogger("payivr.processors.redsys")

ENDPOINTS: dict[str, str] = {
    "test": "https://sis-t.redsys.es:25443/sis/rest/trataPeticionREST",
    "production": "https://sis.redsys.es/sis/rest/trataPeticionREST",
}

_SIS_CODE = re.compile(r"SIS\d{4}")


@dataclass(frozen=True)
class RedsysSettings:
    """A merchant's Redsys terminal, endpoint and key (see docs/processors.md)."""

    endpoint: str
    terminal: Terminal
    secret_key: SecretText
    signature_version: SignatureVersion = SignatureVersion.HMAC_SHA256_V1
    reverse_enabled: bool = True
    verify_tls: bool | str = True

    def __repr__(self) -> str:  # the key object masks itself; keep the repr short anyway
        return (
            f"RedsysSettings(endpoint={self.endpoint!r}, terminal={self.terminal.terminal!r}, "
            f"version={self.signature_version.value})"
        )


def settings_from_options(options: Mapping[str, object]) -> RedsysSettings:
    """Settings from a validated `processor:` section (see core.processor_options)."""
    environment = str(options.get("environment", "test"))
    endpoint = options.get("endpoint") or ENDPOINTS[environment]
    key = options["secret_key"]
    if not callable(getattr(key, "value", None)):
        raise ValueError("secret_key must be a resolved secret reference")
    cof = options.get("token_sale_cof_type", "C")
    ca_file = options.get("ca_file")
    return RedsysSettings(
        endpoint=str(endpoint),
        terminal=Terminal(
            merchant_code=str(options["merchant_code"]),
            terminal=str(options["terminal"]),
            moto=bool(options.get("moto", True)),
            cof_type=str(cof),
        ),
        secret_key=key,  # type: ignore[arg-type]
        signature_version=SignatureVersion(
            str(options.get("signature_version", SignatureVersion.HMAC_SHA256_V1.value))
        ),
        reverse_enabled=bool(options.get("reverse_on_timeout", True)),
        verify_tls=str(ca_file) if ca_file else True,
    )


Mapper = Callable[[int], tuple[ResultCode, str | None]]


class RedsysProcessor(HttpAdapter):
    """`Processor` for Redsys REST (MOTO), per merchant terminal."""

    label = "redsys"
    log = log
    settings: RedsysSettings

    def __init__(self, settings: RedsysSettings, *, memo: AnswerMemo | None = None) -> None:
        super().__init__(memo)
        self.settings = settings

    def __repr__(self) -> str:
        return f"RedsysProcessor({self.settings!r})"

    # -- Processor -----------------------------------------------------------------

    def _charge(self, request: ChargeRequest) -> ProcessorAnswer:
        """Sale, sale + tokenisation, zero-amount tokenisation or token sale."""
        try:
            params = charge_parameters(self.settings.terminal, request)
        except ParameterError as exc:
            log.error("redsys request not built: order=%s: %s", request.order, exc)
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-request")
        return self._call(params, request, codes.map_charge_response, charge=True)

    def _reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        """Void (transaction type 9) whatever the order may have authorised."""
        try:
            params = cancellation_parameters(self.settings.terminal, request)
        except ParameterError as exc:
            log.error("redsys reversal not built: order=%s: %s", request.order, exc)
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-request")
        return self._call(params, request, codes.map_reversal_response, charge=False)

    # -- wire ----------------------------------------------------------------------

    def _call(
        self, params: dict[str, str], request: ChargeRequest, mapper: Mapper, *, charge: bool
    ) -> ProcessorAnswer:
        version = self.settings.signature_version
        try:
            merchant_parameters = encode_parameters(version, to_json(params))
            # Drop the dict's references to the digit strings: from here the request
            # only needs the encoded text. (A Python str cannot be zeroed; its memory
            # is released unwiped, which is why none is ever logged or cached.)
            params.clear()
            signature = sign(
                version, self.settings.secret_key.value(), request.order, merchant_parameters
            )
        except SignatureKeyError as exc:
            log.error("redsys signature impossible: order=%s: %s", request.order, exc)
            return failed(Reason.PROCESSOR_ERROR, "payivr:bad-key")
        body = json.dumps(
            {
                "Ds_SignatureVersion": version.value,
                "Ds_MerchantParameters": merchant_parameters,
                "Ds_Signature": signature,
            }
        ).encode("ascii")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        http = self._post(self.settings.endpoint, body, headers, request)
        if isinstance(http, ProcessorAnswer):
            return http
        answer = self._read(http, request, mapper, charge=charge)
        return self._logged(request.operation.value if charge else "reversal", request, answer)

    def _read(
        self, http: HttpAnswer, request: ChargeRequest, mapper: Mapper, *, charge: bool
    ) -> ProcessorAnswer:
        bad_status = status_failure(http)
        if bad_status is not None:
            return bad_status
        try:
            document = json.loads(http.body)
        except ValueError:
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        if not isinstance(document, dict):
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        fields = {str(k).lower(): v for k, v in document.items()}

        error_code = fields.get("errorcode")
        if error_code is not None:
            # Unsigned, but it can only ever make payivr report a failure.
            if not isinstance(error_code, str) or not _SIS_CODE.fullmatch(error_code):
                return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
            error_result, error_reason = codes.map_error_code(error_code)
            return ProcessorAnswer(error_result, error_reason, None, None, error_code)

        merchant_parameters = fields.get("ds_merchantparameters")
        signature = fields.get("ds_signature")
        if not isinstance(merchant_parameters, str) or not isinstance(signature, str):
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        version = self._answer_version(fields.get("ds_signatureversion"))
        if not verify(
            version, self.settings.secret_key.value(), request.order, merchant_parameters, signature
        ):
            return failed(Reason.PROCESSOR_ERROR, RAW_BAD_SIGNATURE)
        try:
            decoded = json.loads(decode_parameters(merchant_parameters))
        except ValueError:
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        if not isinstance(decoded, dict):
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        answer = read_answer(decoded)
        code = codes.parse_response_code(answer.response)
        if code is None or (answer.order is not None and answer.order != request.order):
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        result, reason = mapper(code)
        raw = f"{code:04d}"
        if not charge or result is not ResultCode.APPROVED:
            return ProcessorAnswer(result, reason, None, None, raw)

        expected_amount = "0" if request.operation is Operation.TOKENIZE else str(request.amount)
        if answer.amount is not None and answer.amount.lstrip("0") != expected_amount.lstrip("0"):
            # Approved for another amount: do not trust it; it will be reversed.
            return failed(Reason.PROCESSOR_ERROR, RAW_MALFORMED)
        token = answer.identifier if request.operation.returns_token else None
        if request.operation is Operation.TOKENIZE and not token:
            return failed(Reason.PROCESSOR_ERROR, "payivr:no-token")
        return ProcessorAnswer(ResultCode.APPROVED, None, answer.auth_code, token, raw)

    def _answer_version(self, stated: object) -> SignatureVersion:
        # Redsys signs its answer with the version of the request; accept another
        # known version only if it says so (the key is the same either way).
        if isinstance(stated, str) and stated in SignatureVersion.__members__:
            return SignatureVersion(stated)
        return self.settings.signature_version
