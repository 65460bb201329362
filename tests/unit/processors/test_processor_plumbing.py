"""Redsys parameters, the connector body, the answer memo and charge_and_settle."""

from __future__ import annotations

import pytest

from payivr.core.processor import (
    ChargeRequest,
    Operation,
    ProcessorAnswer,
    ProcessorTimeout,
    ResultCode,
    idempotency_key,
)
from payivr.core.secrets import SecretDigits
from payivr.processors import charge_and_settle
from payivr.processors.http_connector import request_body
from payivr.processors.memo import AnswerMemo
from payivr.processors.outcome import RAW_BAD_SIGNATURE, failed, needs_reversal
from payivr.processors.redsys.params import (
    ParameterError,
    Terminal,
    cancellation_parameters,
    charge_parameters,
    read_answer,
)
from tests.support.builders import VISA, charge_request

TERMINAL = Terminal(merchant_code="999008881", terminal="1")


def request(
    operation: Operation = Operation.SALE,
    *,
    card: bool = True,
    token: str | None = None,
    currency: str = "EUR",
    cvv: str | None = "582",
) -> ChargeRequest:
    return charge_request(
        "1234AB",
        operation=operation,
        pan=VISA if card else None,
        card_cvv=cvv,
        currency=currency,
        description="x" * 200,
        token=token,
    )


def test_sale_parameters() -> None:
    p = charge_parameters(TERMINAL, request())
    assert p["DS_MERCHANT_EXPIRYDATE"] == "3107"  # YYMM from the keyed MMYY
    assert p["DS_MERCHANT_PAN"] == "4111111111111111"
    assert p["DS_MERCHANT_CVV2"] == "582"
    assert p["DS_MERCHANT_DIRECTPAYMENT"] == "moto"
    assert p["DS_MERCHANT_TRANSACTIONTYPE"] == "0"
    assert len(p["DS_MERCHANT_PRODUCTDESCRIPTION"]) == 125
    assert "DS_MERCHANT_IDENTIFIER" not in p
    assert p["DS_MERCHANT_MERCHANTDATA"] == "payivr:" + idempotency_key("acme", "1234AB")


def test_tokenize_is_a_zero_amount_authorisation_asking_for_an_identifier() -> None:
    p = charge_parameters(TERMINAL, request(Operation.TOKENIZE))
    assert (p["DS_MERCHANT_AMOUNT"], p["DS_MERCHANT_IDENTIFIER"]) == ("0", "REQUIRED")
    assert (p["DS_MERCHANT_COF_INI"], p["DS_MERCHANT_COF_TYPE"]) == ("S", "C")


def test_token_sale_sends_the_identifier_and_no_card_number() -> None:
    p = charge_parameters(TERMINAL, request(Operation.TOKEN_SALE, card=False, token="abc"))
    assert (p["DS_MERCHANT_IDENTIFIER"], p["DS_MERCHANT_COF_INI"]) == ("abc", "N")
    assert "DS_MERCHANT_PAN" not in p and "DS_MERCHANT_CVV2" not in p
    # CVV for token sales where the merchant asks for it.
    with_cvv = request(Operation.TOKEN_SALE, token="abc")
    p = charge_parameters(TERMINAL, with_cvv)
    assert p["DS_MERCHANT_CVV2"] == "582" and "DS_MERCHANT_PAN" not in p


@pytest.mark.parametrize(
    "bad",
    [
        request(Operation.TOKEN_SALE, card=False),  # no token
        request(Operation.SALE, card=False),  # no card
        request(currency="XTS"),  # no numeric code known
    ],
)
def test_impossible_requests_raise_without_card_data(bad: ChargeRequest) -> None:
    with pytest.raises(ParameterError) as info:
        charge_parameters(TERMINAL, bad)
    assert "4111" not in str(info.value)


def test_wiped_card_is_refused() -> None:
    r = request()
    assert r.card is not None
    r.card.wipe()
    with pytest.raises(ParameterError):
        charge_parameters(TERMINAL, r)


def test_cancellation_carries_no_card_data() -> None:
    p = cancellation_parameters(TERMINAL, request())
    assert p["DS_MERCHANT_TRANSACTIONTYPE"] == "9"
    assert not any(
        k in p for k in ("DS_MERCHANT_PAN", "DS_MERCHANT_EXPIRYDATE", "DS_MERCHANT_CVV2")
    )


def test_read_answer_is_case_insensitive() -> None:
    a = read_answer(
        {
            "DS_ORDER": "1234AB",
            "Ds_Response": "0000",
            "ds_authorisationcode": 123456,
            "Ds_Merchant_Identifier": " tok ",
        }
    )
    assert (a.order, a.response, a.auth_code, a.identifier) == ("1234AB", "0000", "123456", "tok")


def test_connector_body() -> None:
    body = request_body(request(), operation="sale")
    assert body["card"] == {"number": "4111111111111111", "expiry": "0731", "cvv": "582"}
    assert body["idempotency_key"] == idempotency_key("acme", "1234AB")
    reverse = request_body(request(), operation="reverse")
    assert reverse["card"] is None and reverse["original_operation"] == "sale"
    token_sale = request_body(request(Operation.TOKEN_SALE, token="t1"), operation="token_sale")
    assert token_sale["card"] == {"number": None, "expiry": None, "cvv": "582"}
    assert token_sale["token"] == "t1"
    assert request_body(request(Operation.TOKENIZE), operation="tokenize")["amount"] == 0


def test_memo_expires_and_is_bounded() -> None:
    now = [0.0]
    memo = AnswerMemo(max_entries=2, ttl_s=10, clock=lambda: now[0])
    ok = ProcessorAnswer(ResultCode.APPROVED, auth_code="1")
    memo.put("a", ok)
    memo.put("b", ok)
    memo.put("c", ok)
    assert memo.get("a") is None and memo.get("c") is ok
    now[0] = 11.0
    assert memo.get("c") is None
    memo.put("d", ok)
    memo.forget("d")
    assert memo.get("d") is None
    memo.put("d", ok)  # a late answer after the reversal: not remembered
    assert memo.get("d") is None
    now[0] = 30.0
    memo.put("d", ok)  # the tombstone expired with the TTL
    assert memo.get("d") is ok


class ScriptedProcessor:
    """A processor whose charge/reverse results are given in advance."""

    def __init__(self, charge: object, reverse: object = None) -> None:
        self._charge, self._reverse = charge, reverse
        self.reversed = 0

    def _run(self, outcome: object) -> ProcessorAnswer:
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, ProcessorAnswer)
        return outcome

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        return self._run(self._charge)

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        self.reversed += 1
        return self._run(self._reverse)


VOIDED = ProcessorAnswer(ResultCode.APPROVED, raw_code="0400")


def test_settle_approved_needs_nothing_else() -> None:
    p = ScriptedProcessor(ProcessorAnswer(ResultCode.APPROVED, auth_code="9", raw_code="0000"))
    outcome = charge_and_settle(p, request())
    assert outcome.reversal is None and p.reversed == 0
    assert outcome.session_fields() == {"processor_raw_code": "0000"}


def test_settle_timeout_reports_failed_and_reverses() -> None:
    p = ScriptedProcessor(ProcessorTimeout(), VOIDED)
    outcome = charge_and_settle(p, request())
    assert (outcome.answer.code, outcome.answer.reason) == (ResultCode.FAILED, "processor-timeout")
    assert outcome.answer.auth_code is None and p.reversed == 1
    assert outcome.session_fields() == {
        "processor_raw_code": "payivr:timeout",
        "reversal": "reversed",
        "reversal_raw_code": "0400",
    }


@pytest.mark.parametrize("reversal", [ProcessorTimeout(), RuntimeError("boom")])
def test_settle_records_a_failed_reversal_without_raising(reversal: BaseException) -> None:
    p = ScriptedProcessor(failed("processor-error", RAW_BAD_SIGNATURE), reversal)
    outcome = charge_and_settle(p, request())
    assert outcome.answer.code is ResultCode.FAILED
    assert outcome.reversal_status == "reversal-failed"


def test_plain_refusals_are_not_reversed() -> None:
    declined = ProcessorAnswer(ResultCode.DECLINED, "insufficient-funds", raw_code="0116")
    p = ScriptedProcessor(declined)
    assert charge_and_settle(p, request()).answer == declined and p.reversed == 0
    assert not needs_reversal(failed("processor-error", "SIS0042"))
    assert needs_reversal(failed("processor-error", RAW_BAD_SIGNATURE))


def token_sale_with_cvv(cvv: str = "582") -> ChargeRequest:
    """A token sale as the ESL driver builds it with capture.token_sale_cvv on."""
    return charge_request(
        "1234AB", operation=Operation.TOKEN_SALE, pan=None, token="tok_abc", cvv=SecretDigits(cvv)
    )


def test_redsys_token_sale_sends_the_keyed_cvv_with_the_identifier() -> None:
    p = charge_parameters(TERMINAL, token_sale_with_cvv())
    assert (p["DS_MERCHANT_IDENTIFIER"], p["DS_MERCHANT_CVV2"]) == ("tok_abc", "582")
    assert "DS_MERCHANT_PAN" not in p and "DS_MERCHANT_EXPIRYDATE" not in p
    assert "DS_MERCHANT_CVV2" not in cancellation_parameters(TERMINAL, token_sale_with_cvv())


def test_redsys_token_sale_refuses_a_wiped_cvv() -> None:
    r = token_sale_with_cvv()
    assert r.cvv is not None
    r.cvv.wipe()
    with pytest.raises(ParameterError) as info:
        charge_parameters(TERMINAL, r)
    assert "582" not in str(info.value)


def test_connector_token_sale_body_carries_only_the_cvv() -> None:
    body = request_body(token_sale_with_cvv(), operation="token_sale")
    assert body["card"] == {"number": None, "expiry": None, "cvv": "582"}
    assert body["token"] == "tok_abc"
    assert request_body(token_sale_with_cvv(), operation="reverse")["card"] is None
    without = request_body(request(Operation.TOKEN_SALE, card=False, token="t"), operation="x")
    assert without["card"] is None


def test_connector_token_sale_refuses_a_wiped_cvv() -> None:
    r = token_sale_with_cvv()
    assert r.cvv is not None
    r.cvv.wipe()
    with pytest.raises(ValueError):
        request_body(r, operation="token_sale")
