"""The Redsys REST adapter against a loopback server speaking Redsys' shape."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest
from fake_redsys_server import FakeRedsys, FakeRedsysServer
from processors_support import (
    APPROVED_PAN,
    CVV,
    EXPIRY_YYMM,
    charge_request,
    find_card_data,
    no_card_data_in_logs,
)

from payivr.core.configread import Secret
from payivr.core.processor import Operation, ProcessorTimeout, ResultCode
from payivr.processors import charge_and_settle
from payivr.processors.redsys.client import RedsysProcessor, RedsysSettings
from payivr.processors.redsys.crypto import SignatureVersion
from payivr.processors.redsys.params import Terminal

__all__ = ["no_card_data_in_logs"]  # the fixture, imported for pytest to find

TEST_KEY = "sq7HjrUOBfKmC576ILgskD5srU870gJ7"

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_card_data_in_logs")]


@pytest.fixture()
def sis() -> Iterator[FakeRedsysServer]:
    server = FakeRedsysServer(FakeRedsys(secret=TEST_KEY)).start()
    yield server
    server.stop()
    assert not server.state.problems, server.state.problems


def redsys(
    server: FakeRedsysServer,
    version: SignatureVersion = SignatureVersion.HMAC_SHA256_V1,
    key: str = TEST_KEY,
) -> RedsysProcessor:
    return RedsysProcessor(
        RedsysSettings(
            endpoint=server.url,
            terminal=Terminal(merchant_code="999008881", terminal="1"),
            secret_key=Secret(key, "env:REDSYS_KEY"),
            signature_version=version,
        )
    )


@pytest.mark.parametrize("version", list(SignatureVersion))
def test_sale_approved_with_each_signature_version(
    sis: FakeRedsysServer, version: SignatureVersion
) -> None:
    answer = redsys(sis, version).charge(charge_request("1001ABC"))
    assert answer.code is ResultCode.APPROVED
    assert answer.raw_code == "0000"
    assert answer.auth_code and len(answer.auth_code) == 6
    assert answer.token is None
    (sent,) = sis.state.requests
    assert sent["version"] == version.value
    params = sent["params"]
    assert params["DS_MERCHANT_PAN"] == APPROVED_PAN
    assert params["DS_MERCHANT_EXPIRYDATE"] == EXPIRY_YYMM
    assert params["DS_MERCHANT_CVV2"] == CVV
    assert params["DS_MERCHANT_DIRECTPAYMENT"] == "moto"
    assert params["DS_MERCHANT_AMOUNT"] == "1250"
    assert params["DS_MERCHANT_CURRENCY"] == "978"
    assert params["DS_MERCHANT_TRANSACTIONTYPE"] == "0"
    if version is SignatureVersion.HMAC_SHA512_V2:
        assert "=" not in sent["raw"] and "+" not in sent["raw"]
    assert len(sis.state.charges()) == 1


@pytest.mark.parametrize(
    ("pan", "cvv", "code", "reason", "raw"),
    [
        ("4000000000000002", CVV, ResultCode.DECLINED, "card-declined", "0190"),
        ("4000000000009995", CVV, ResultCode.DECLINED, "insufficient-funds", "0116"),
        ("4000000000000069", CVV, ResultCode.DECLINED, "card-expired", "0101"),
        (APPROVED_PAN, "999", ResultCode.DECLINED, "invalid-card", "0129"),
        ("4000000000000119", CVV, ResultCode.FAILED, "processor-error", "0909"),
    ],
)
def test_refusals_map_to_spec_reasons(
    sis: FakeRedsysServer, pan: str, cvv: str, code: ResultCode, reason: str, raw: str
) -> None:
    outcome = charge_and_settle(redsys(sis), charge_request("2002", pan=pan, cvv=cvv))
    assert (outcome.answer.code, outcome.answer.reason, outcome.answer.raw_code) == (
        code,
        reason,
        raw,
    )
    assert outcome.answer.auth_code is None
    assert outcome.reversal is None  # a clear refusal needs no reversal
    assert sis.state.charges() == []


@pytest.mark.parametrize("mode", ["malformed", "bad-signature", "wrong-order", "http500"])
def test_untrustworthy_answers_fail_and_are_reversed(sis: FakeRedsysServer, mode: str) -> None:
    sis.state.mode = mode
    request = charge_request("3003" + mode.replace("-", "")[:4].upper())
    outcome = charge_and_settle(redsys(sis), request)
    assert outcome.answer.code is ResultCode.FAILED
    assert outcome.answer.reason == "processor-error"
    assert outcome.answer.auth_code is None
    # The fake booked the charge although its answer cannot be trusted: the
    # reversal must have voided it.
    sis.state.mode = "normal"
    assert outcome.reversal is not None
    kinds = [r["params"]["DS_MERCHANT_TRANSACTIONTYPE"] for r in sis.state.requests]
    assert kinds == ["0", "9"]
    assert sis.state.orders[request.order].voided or mode == "http500"


def test_bad_answer_signature_is_reported_failed_never_approved(sis: FakeRedsysServer) -> None:
    sis.state.mode = "bad-signature"
    answer = redsys(sis).charge(charge_request("3100"))
    assert answer.code is ResultCode.FAILED
    assert answer.raw_code == "payivr:bad-response-signature"


def test_timeout_is_failed_then_reversed(sis: FakeRedsysServer) -> None:
    sis.state.delay_s = 1.5
    request = charge_request("4004", timeout_s=0.4)
    processor = redsys(sis)
    with pytest.raises(ProcessorTimeout):
        processor.charge(request)
    outcome = charge_and_settle(redsys(sis), charge_request("4005", timeout_s=0.4))
    assert (outcome.answer.code, outcome.answer.reason) == (ResultCode.FAILED, "processor-timeout")
    assert outcome.reversal_status == "reversed"
    assert outcome.session_fields()["reversal"] == "reversed"
    assert outcome.reversal is not None and outcome.reversal.raw_code == "0400"
    assert sis.state.orders["4005"].voided
    # 4004's charge was booked too (nobody reversed it in this test): only it remains.
    assert [o.params["DS_MERCHANT_ORDER"] for o in sis.state.charges()] == ["4004"]


def test_retry_with_the_same_key_never_charges_twice(sis: FakeRedsysServer) -> None:
    processor = redsys(sis)
    first = processor.charge(charge_request("5005"))
    again = processor.charge(charge_request("5005"))  # same process: from memory
    assert again == first and first.code is ResultCode.APPROVED
    assert len(sis.state.requests) == 1
    # Another worker (no shared memory) retrying the same order: Redsys refuses it.
    elsewhere = redsys(sis).charge(charge_request("5005"))
    assert (elsewhere.code, elsewhere.reason, elsewhere.raw_code) == (
        ResultCode.FAILED,
        "duplicate-order",
        "SIS0051",
    )
    assert len(sis.state.requests) == 2
    assert len(sis.state.charges()) == 1


def test_tokenize_then_token_sale(sis: FakeRedsysServer) -> None:
    processor = redsys(sis, SignatureVersion.HMAC_SHA512_V2)
    verified = processor.charge(charge_request("6006", operation=Operation.TOKENIZE))
    assert verified.code is ResultCode.APPROVED and verified.token
    sent = sis.state.requests[0]["params"]
    assert sent["DS_MERCHANT_AMOUNT"] == "0"
    assert sent["DS_MERCHANT_IDENTIFIER"] == "REQUIRED"
    assert sent["DS_MERCHANT_COF_INI"] == "S"
    assert sis.state.charges() == []  # a verification charges nothing

    paid = processor.charge(
        charge_request("6007", operation=Operation.TOKEN_SALE, token=verified.token, amount=990)
    )
    assert paid.code is ResultCode.APPROVED and paid.token is None
    sent = sis.state.requests[1]["params"]
    assert sent["DS_MERCHANT_IDENTIFIER"] == verified.token
    assert sent["DS_MERCHANT_COF_INI"] == "N"
    assert "DS_MERCHANT_PAN" not in sent and "DS_MERCHANT_EXPIRYDATE" not in sent
    assert [o.params["DS_MERCHANT_AMOUNT"] for o in sis.state.charges()] == ["990"]


def test_sale_tokenize_returns_the_identifier(sis: FakeRedsysServer) -> None:
    answer = redsys(sis).charge(charge_request("7007", operation=Operation.SALE_TOKENIZE))
    assert answer.code is ResultCode.APPROVED
    assert answer.token == sis.state.orders["7007"].token
    assert len(sis.state.charges()) == 1


def test_unknown_token_is_declined(sis: FakeRedsysServer) -> None:
    answer = redsys(sis).charge(
        charge_request("7100", operation=Operation.TOKEN_SALE, token="0" * 40)
    )
    assert (answer.code, answer.reason) == (ResultCode.DECLINED, "invalid-card")


def test_wrong_merchant_key_is_a_processor_error(sis: FakeRedsysServer) -> None:
    other_key = base64.b64encode(b"another-24-byte-key-here").decode()  # not the terminal's
    answer = redsys(sis, key=other_key).charge(charge_request("8008"))
    assert (answer.code, answer.reason, answer.raw_code) == (
        ResultCode.FAILED,
        "processor-error",
        "SIS0042",
    )
    sis.state.problems.clear()  # the fake noted the bad signature on purpose


def test_connection_refused_needs_no_reversal(no_card_data_in_logs: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        processor = RedsysProcessor(
            RedsysSettings(
                endpoint=f"http://127.0.0.1:{port}/sis/rest/trataPeticionREST",
                terminal=Terminal("999008881", "1"),
                secret_key=Secret(TEST_KEY, "env:K"),
            )
        )
        outcome = charge_and_settle(processor, charge_request("9009"))
    assert outcome.answer.code is ResultCode.FAILED
    assert outcome.answer.raw_code == "payivr:connection-refused"
    assert outcome.reversal is None


def test_exceptions_carry_no_card_data(
    sis: FakeRedsysServer, no_card_data_in_logs: list[str]
) -> None:
    sis.state.delay_s = 1.0
    with pytest.raises(ProcessorTimeout) as info:
        redsys(sis).charge(charge_request("9100", timeout_s=0.3))
    text = f"{info.value!s} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    no_card_data_in_logs.append(text)
    assert find_card_data(text) == []
