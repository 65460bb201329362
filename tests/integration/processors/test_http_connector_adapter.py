"""The generic HTTP connector against a loopback gateway speaking the contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_connector_server import FakeConnector, FakeConnectorServer
from processors_support import (
    APPROVED_PAN,
    CVV,
    EXPIRY_MMYY,
    charge_request,
    find_card_data,
    no_card_data_in_logs,
)

from payivr.core.configread import Secret
from payivr.core.processor import Operation, ProcessorTimeout, ResultCode
from payivr.processors import charge_and_settle
from payivr.processors.http_connector import HttpConnectorProcessor, HttpConnectorSettings

__all__ = ["no_card_data_in_logs"]

SECRET = "connector-secret-0123456789"

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_card_data_in_logs")]


@pytest.fixture()
def gateway() -> Iterator[FakeConnectorServer]:
    server = FakeConnectorServer(FakeConnector(SECRET.encode(), key_id="acme-1")).start()
    yield server
    server.stop()
    assert not server.state.problems, server.state.problems


def connector(server: FakeConnectorServer, secret: str = SECRET) -> HttpConnectorProcessor:
    return HttpConnectorProcessor(
        HttpConnectorSettings(
            url=server.url, secret=Secret(secret, "file:acme_connector"), key_id="acme-1"
        )
    )


def test_sale_approved(gateway: FakeConnectorServer) -> None:
    answer = connector(gateway).charge(charge_request("A-1"))
    assert answer.code is ResultCode.APPROVED
    assert answer.auth_code and answer.token is None
    (sent,) = gateway.state.requests
    assert sent["operation"] == "sale"
    assert sent["card"] == {"number": APPROVED_PAN, "expiry": EXPIRY_MMYY, "cvv": CVV}
    assert (sent["amount"], sent["currency"], sent["order"]) == (1250, "EUR", "A-1")
    assert sent["version"] == 1
    assert gateway.state.charged == {sent["idempotency_key"]: 1250}


@pytest.mark.parametrize(
    ("pan", "code", "reason"),
    [
        ("4000000000000002", ResultCode.DECLINED, "card-declined"),
        ("4000000000009995", ResultCode.DECLINED, "insufficient-funds"),
        ("4000000000000069", ResultCode.DECLINED, "card-expired"),
        ("4000000000000119", ResultCode.FAILED, "processor-error"),
    ],
)
def test_refusals(gateway: FakeConnectorServer, pan: str, code: ResultCode, reason: str) -> None:
    outcome = charge_and_settle(connector(gateway), charge_request("B-1", pan=pan))
    assert (outcome.answer.code, outcome.answer.reason) == (code, reason)
    assert outcome.answer.raw_code == f"GW-{reason}"
    assert outcome.reversal is None
    assert gateway.state.charged == {}


@pytest.mark.parametrize("mode", ["malformed", "bad-signature", "unsigned", "other-key", "stale"])
def test_untrustworthy_answers_fail_and_are_reversed(
    gateway: FakeConnectorServer, mode: str
) -> None:
    gateway.state.mode = mode
    outcome = charge_and_settle(connector(gateway), charge_request("C-" + mode))
    assert outcome.answer.code is ResultCode.FAILED
    assert outcome.answer.auth_code is None
    assert outcome.reversal is not None
    assert [r["operation"] for r in gateway.state.requests] == ["sale", "reverse"]
    assert gateway.state.charged == {}  # the gateway's charge was voided


def test_timeout_is_failed_then_reversed(gateway: FakeConnectorServer) -> None:
    gateway.state.delay_s = 1.0
    processor = connector(gateway)
    request = charge_request("D-1", timeout_s=0.3)
    with pytest.raises(ProcessorTimeout):
        processor.charge(request)
    gateway.state.delay_s = 0.0
    outcome = charge_and_settle(processor, charge_request("D-2", timeout_s=0.3))
    assert outcome.reversal is None  # answered in time now
    gateway.state.delay_s = 1.0
    outcome = charge_and_settle(processor, charge_request("D-3", timeout_s=0.3))
    assert (outcome.answer.code, outcome.answer.reason) == (ResultCode.FAILED, "processor-timeout")
    # The reversal is slow too: it times out and that is recorded, not raised.
    assert outcome.reversal_status == "reversal-failed"
    gateway.state.delay_s = 0.0
    settled = processor.reverse(charge_request("D-3"))
    assert settled.code is ResultCode.APPROVED
    assert set(gateway.state.charged) == {
        charge_request("D-1").idempotency_key,
        charge_request("D-2").idempotency_key,
    }


def test_timeout_then_successful_reversal(gateway: FakeConnectorServer) -> None:
    gateway.state.delay_s = 0.8
    processor = connector(gateway)
    request = charge_request("D-9", timeout_s=0.3)
    with pytest.raises(ProcessorTimeout):
        processor.charge(request)
    gateway.state.delay_s = 0.0
    outcome = charge_and_settle(processor, request)  # the retry: replayed, approved
    assert outcome.answer.code is ResultCode.APPROVED
    reversal = processor.reverse(request)
    assert (reversal.code, reversal.raw_code) == (ResultCode.APPROVED, "VOIDED")
    assert gateway.state.charged == {}
    # A reversed key is never charged again, from this process or another.
    for retry in (processor, connector(gateway)):
        again = retry.charge(request)
        assert (again.code, again.reason) == (ResultCode.FAILED, "duplicate-order")
    assert gateway.state.charged == {}


def test_retry_with_the_same_key_never_charges_twice(gateway: FakeConnectorServer) -> None:
    first = connector(gateway).charge(charge_request("E-1"))
    # Another worker retrying: the gateway replays its first answer.
    again = connector(gateway).charge(charge_request("E-1"))
    assert again == first
    assert len(gateway.state.requests) == 2
    assert len(gateway.state.charged) == 1
    # The same worker retrying: answered from memory, no request at all.
    processor = connector(gateway)
    processor.charge(charge_request("E-2"))
    processor.charge(charge_request("E-2"))
    assert len(gateway.state.requests) == 3


def test_tokenize_then_token_sale(gateway: FakeConnectorServer) -> None:
    processor = connector(gateway)
    verified = processor.charge(charge_request("F-1", operation=Operation.TOKENIZE))
    assert verified.code is ResultCode.APPROVED and verified.token
    assert gateway.state.requests[0]["amount"] == 0
    assert gateway.state.charged == {}
    paid = processor.charge(
        charge_request("F-2", operation=Operation.TOKEN_SALE, token=verified.token)
    )
    assert paid.code is ResultCode.APPROVED
    sent = gateway.state.requests[1]
    assert sent["card"] is None and sent["token"] == verified.token
    assert list(gateway.state.charged.values()) == [1250]


def test_sale_tokenize(gateway: FakeConnectorServer) -> None:
    answer = connector(gateway).charge(charge_request("G-1", operation=Operation.SALE_TOKENIZE))
    assert answer.code is ResultCode.APPROVED and answer.token


def test_wrong_secret_is_refused_by_the_gateway(gateway: FakeConnectorServer) -> None:
    outcome = charge_and_settle(connector(gateway, "not-the-secret-at-all"), charge_request("H-1"))
    assert (outcome.answer.code, outcome.answer.raw_code) == (ResultCode.FAILED, "payivr:http-401")
    assert outcome.reversal is None  # refused: nothing charged
    gateway.state.problems.clear()


def test_exceptions_carry_no_card_data(
    gateway: FakeConnectorServer, no_card_data_in_logs: list[str]
) -> None:
    gateway.state.delay_s = 0.8
    with pytest.raises(ProcessorTimeout) as info:
        connector(gateway).charge(charge_request("I-1", timeout_s=0.2))
    text = f"{info.value!s} {info.value!r} {info.value.__context__!r}"
    no_card_data_in_logs.append(text)
    assert find_card_data(text) == []
