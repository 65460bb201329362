"""The one card-number detector (payivr.core.pan) and its users agreeing.

The agent API's use of it is tested through its HTTP API in tests/agent.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payivr.core.admission import Accept, Reject
from payivr.core.errors import Rejection
from payivr.core.logfilter import MASK, mask_digits
from payivr.core.pan import contains_card_number
from payivr.core.request import parse_request
from tests.unit.helpers import example_config, signed_headers
from tests.unit.test_request_admission import decide

ACME = example_config().merchants["acme"]
# A 12-digit Maestro-range number that passes Luhn: a PAN by SPEC 6's length rule.
PAN12 = "501800000009"


def test_a_12_digit_pan_in_the_description_is_refused_at_admission() -> None:
    decision = decide(signed_headers(x_pay_description=f"card {PAN12}"))
    assert isinstance(decision, Reject)
    r = decision.rejection
    assert (r.status, r.header) == (400, "X-Pay-Description")
    assert PAN12 not in r.problem


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 declined",
        "pan=4111111111111111;",
        "(4111-1111-1111-1111)",
        "processor said: '378282246310005'",
        f"PAN: {PAN12}",
        "x5555555555555555555x",
        "ord-4111-1111-1111-1111",
        "abc1 2345 6789 0123",
        "41111111111111111230737",  # PAN, expiry and CVV glued together
        "tok_4111111111111111",
    ],
)
def test_card_numbers_in_text_are_found_and_masked(text: str) -> None:
    assert contains_card_number(text)
    masked = mask_digits(text)
    assert MASK in masked
    digits = "".join(c for c in masked if c.isdigit())
    assert len(digits) < 12


@pytest.mark.parametrize(
    "text",
    [
        "channel 550e8400-e29b-41d4-a716-446655440000 answered",
        "uuid f1234567-8901-2345-b0e7-123456789012 hung up",
        "Call-ID 123456789012345@10.0.0.1 relayed",
        "From <sip:+491511234567890@pbx.example>;tag=1",
        "trace 3f2a12345678901234567b",
        "session ab234567234567abcdefghijkl stored",
        "outbox entry 1733234567890-0 lost its lease",
        "order 1250 at 12:00, auth 123456",
    ],
)
def test_identifiers_stay_readable(text: str) -> None:
    assert not contains_card_number(text)
    assert mask_digits(text) == text


def _admission_refuses(description: str) -> bool:
    fields = {
        "x-pay-operation": "sale",
        "x-pay-order": "A1001",
        "x-pay-amount": "1250",
        "x-pay-description": description,
    }
    try:
        parse_request(fields, ACME, call_id="c@h")
    except Rejection as rejection:
        return rejection.header == "X-Pay-Description"
    return False


_TEXT = st.text(alphabet="0123456789  --abcfxyz@.:=_", max_size=60).map(str.strip)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_log_filter_and_admission_agree(text: str) -> None:
    found = contains_card_number(text)
    assert (mask_digits(text) != text) == found
    if text:
        assert _admission_refuses(text) == found


def test_admission_accepts_what_the_detector_passes() -> None:
    assert isinstance(decide(signed_headers(x_pay_description="call 550e8400-e29b")), Accept)
