"""X-Pay-Input (SPEC 2) and the merchant's default input (capture.input)."""

from __future__ import annotations

import pytest

from payivr.core.admission import Accept
from payivr.core.config import ConfigError
from payivr.core.speech_input import InputMode
from tests.unit.helpers import config_from, example_data, signed_headers
from tests.unit.test_request_admission import decide, rejection


def test_input_defaults_to_dtmf() -> None:
    decision = decide(signed_headers())
    assert isinstance(decision, Accept)
    assert decision.request.input_mode is InputMode.DTMF


@pytest.mark.parametrize("value", ["speech", "any", "dtmf", "SPEECH"])
def test_input_header_chooses_the_mode(value: str) -> None:
    decision = decide(signed_headers(x_pay_input=value))
    assert isinstance(decision, Accept)
    assert decision.request.input_mode is InputMode(value.lower())


def test_unknown_input_is_400_naming_the_header() -> None:
    r = rejection(decide(signed_headers(x_pay_input="voice")))
    assert (r.status, r.header) == (400, "X-Pay-Input")
    assert "dtmf, speech, any" in r.problem


def test_input_header_is_signed() -> None:
    headers = [
        (k, "speech" if k == "X-Pay-Input" else v) for k, v in signed_headers(x_pay_input="dtmf")
    ]
    r = rejection(decide(headers))
    assert (r.status, r.header) == (403, "X-Pay-Signature")


def test_merchant_default_input_is_used_without_the_header() -> None:
    data = example_data()
    data["merchants"]["acme"].setdefault("capture", {})["input"] = "any"
    decision = decide(signed_headers(), config=config_from(data))
    assert isinstance(decision, Accept)
    assert decision.request.input_mode is InputMode.ANY


def test_merchant_default_input_is_validated() -> None:
    data = example_data()
    data["merchants"]["acme"].setdefault("capture", {})["input"] = "voice"
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert any(p.startswith("merchants.acme.capture.input:") for p in err.value.problems)


def test_session_keeps_the_input_mode_and_keyed_sessions_are_unchanged() -> None:
    from datetime import UTC, datetime

    from payivr.core.session import Session
    from tests.support.builders import payment_request

    now = datetime(2026, 11, 21, tzinfo=UTC)
    spoken = Session.new(payment_request(input_mode=InputMode.ANY), now)
    stored = spoken.to_hash()
    assert stored["input"] == "any"
    assert Session.from_hash(stored).request.input_mode is InputMode.ANY
    keyed = Session.new(payment_request(), now).to_hash()
    assert "input" not in keyed
    assert Session.from_hash(keyed).request.input_mode is InputMode.DTMF
