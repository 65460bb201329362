from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from payivr.core.processor import ProcessorAnswer, ResultCode
from payivr.core.request import ReturnTarget
from payivr.core.result import (
    SIGNED_RESULT_HEADERS,
    Outcome,
    build_result,
    callback_body,
    result_headers,
    verify_result_headers,
)
from payivr.core.session import Session, SessionState
from payivr.core.signature import (
    canonical_string,
    sign_callback,
    verify,
    verify_callback,
)
from tests.support.builders import payment_request

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 21, 10, 1, 10, tzinfo=UTC)


def test_worked_example_of_the_readme() -> None:
    """The README's worked example, recomputed here with nothing but hmac."""
    canonical = (
        "x-pay-amount:1250\nx-pay-currency:EUR\nx-pay-merchant:acme\n"
        "x-pay-operation:sale\nx-pay-order:A1001\nx-pay-timestamp:1795263787\n"
        "a84b4c76e66710@cti.example.com"
    )
    fields = {
        "X-Pay-Merchant": "acme",
        "X-Pay-Operation": "sale",
        "X-Pay-Order": "A1001",
        "X-Pay-Amount": "1250",
        "X-Pay-Currency": "EUR",
        "X-Pay-Timestamp": "1795263787",
    }
    signed = {n.lower() for n in fields}
    assert canonical_string(fields, "a84b4c76e66710@cti.example.com", signed) == canonical
    mac = hmac.new(b"demo-signing-secret-acme-0001", canonical.encode(), hashlib.sha256)
    assert mac.hexdigest() == "e4b73a0499c933758ff2fa5ad270eb00d22377ad768fe4da0174871dd4106785"


def test_callback_signature_round_trip_and_independent_check() -> None:
    body = b'{"event_id":"evt_1"}'
    header = sign_callback(b"cb-secret", body, 1795263787)
    expected = hmac.new(b"cb-secret", b"1795263787." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1795263787,v1={expected}"
    assert verify_callback(b"cb-secret", body, header)
    assert not verify_callback(b"cb-secret", body + b" ", header)
    assert not verify_callback(b"other", body, header)
    assert not verify_callback(b"cb-secret", body, header, now=1795263787 + 301, window_s=300)
    assert not verify_callback(b"cb-secret", body, "garbage")


def approved_result():  # type: ignore[no-untyped-def]
    answer = ProcessorAnswer(ResultCode.APPROVED, None, "123456", None, "0000")
    outcome = Outcome.from_answer(answer, brand="visa", last4="1111")
    return build_result(
        payment_request(),
        session_id="s1",
        event_id="evt_1",
        created_at=T0,
        completed_at=T1,
        outcome=outcome,
    )


def test_result_headers_are_signed_with_the_returning_call_id() -> None:
    headers = dict(result_headers(approved_result(), b"k", "ret-call@payivr", 1795263800))
    assert headers["X-Pay-Result"] == "approved"
    assert "X-Pay-Reason" not in headers
    assert headers["X-Pay-Card"] == "************1111"
    assert headers["X-Pay-Auth-Code"] == "123456"
    sig = headers.pop("X-Pay-Signature")
    assert verify(b"k", headers, "ret-call@payivr", sig, SIGNED_RESULT_HEADERS)
    assert not verify(b"k", headers, "call-1@cti", sig, SIGNED_RESULT_HEADERS)


def test_result_headers_verify_as_a_contact_center_reads_them() -> None:
    headers = result_headers(approved_result(), b"k", "ret-call@payivr", 1795263800)
    # Header names arrive in any case, with the contact center's own headers among them.
    received = [(name.upper(), value) for name, value in headers] + [("Via", "SIP/2.0/UDP x")]
    assert verify_result_headers(received, b"k", "ret-call@payivr")
    assert not verify_result_headers(received, b"k", "call-1@cti")
    assert not verify_result_headers(received, b"other", "ret-call@payivr")
    forged = [(n, "declined" if n == "X-PAY-RESULT" else v) for n, v in received]
    assert not verify_result_headers(forged, b"k", "ret-call@payivr")
    unsigned = [(n, v) for n, v in received if n != "X-PAY-SIGNATURE"]
    assert not verify_result_headers(unsigned, b"k", "ret-call@payivr")


def test_declined_never_carries_an_auth_code() -> None:
    answer = ProcessorAnswer(ResultCode.DECLINED, "insufficient-funds", "999999", None, "0116")
    outcome = Outcome.from_answer(answer, brand="visa", last4="9995")
    assert outcome.auth_code is None and outcome.reason == "insufficient-funds"


def test_callback_body_matches_the_spec_shape() -> None:
    payload = json.loads(callback_body(approved_result()))
    assert list(payload) == [
        "event_id",
        "session_id",
        "merchant",
        "order",
        "operation",
        "result",
        "reason",
        "amount",
        "currency",
        "auth_code",
        "token",
        "card",
        "created_at",
        "completed_at",
    ]
    assert payload["card"] == {"brand": "visa", "last4": "1111"}
    assert payload["created_at"] == "2026-11-21T10:00:00Z"
    assert payload["completed_at"] == "2026-11-21T10:01:10Z"
    assert "raw_code" not in payload


def test_session_hash_round_trip() -> None:
    s = Session.new(
        payment_request(
            return_to=ReturnTarget("uri", "sip:q@127.0.0.1"), callback_url="http://127.0.0.1/cb"
        ),
        T0,
        session_id="sid",
    )
    s = s.with_state(SessionState.DONE, T1)
    s = Session(s.id, s.request, s.state, s.created_at, s.updated_at, approved_result())
    raw = {k.encode(): v.encode() for k, v in s.to_hash().items()}
    assert Session.from_hash(raw) == s


def test_session_ids_are_128_bit_url_safe_and_never_look_like_options() -> None:
    import re

    from payivr.core.session import new_session_id

    ids = {new_session_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[a-z2-7]{26}", i) for i in ids)
