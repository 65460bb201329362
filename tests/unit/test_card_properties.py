"""Property tests for the card rules: they hold for every digit string."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from payivr.core.card import (
    BRANDS,
    detect_brand,
    luhn_check_digit,
    luhn_valid,
    mask_pan,
    validate_cvv,
    validate_expiry,
    validate_pan,
)

digit_strings = st.text(alphabet="0123456789", max_size=40)
any_text = st.text(max_size=40)


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_check_digit_round_trips(partial: str) -> None:
    digit = luhn_check_digit(partial)
    assert len(digit) == 1 and digit.isdigit()
    assert luhn_valid(partial + digit)
    # Every other final digit fails: the check digit is unique.
    for other in "0123456789":
        if other != digit:
            assert not luhn_valid(partial + other)


@given(digit_strings)
def test_brand_detection_never_crashes(text: str) -> None:
    brand = detect_brand(text)
    assert brand is None or brand in BRANDS


@given(any_text)
def test_validators_never_crash_and_return_known_reasons(text: str) -> None:
    brand, reason = validate_pan(text, BRANDS)
    assert brand is None or brand in BRANDS
    assert reason in {
        None,
        "not-digits",
        "too-short",
        "too-long",
        "unknown-brand",
        "wrong-length",
        "invalid-number",
        "brand-not-accepted",
    }
    assert validate_expiry(text, datetime.date(2026, 11, 21)) in {
        None,
        "not-digits",
        "too-short",
        "too-long",
        "invalid-month",
        "expired",
        "too-far-ahead",
    }
    assert validate_cvv(text, None) in {None, "not-digits", "too-short", "too-long"}


@given(digit_strings)
def test_masking_never_reveals_more_than_four_digits(text: str) -> None:
    masked = mask_pan(text)
    assert len(masked) == len(text)
    shown = [c for c in masked if c != "*"]
    assert len(shown) <= 4
    assert masked.endswith("".join(shown))
    if shown:
        assert text.endswith("".join(shown))


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_valid_reason_implies_luhn(partial: str) -> None:
    pan = partial + luhn_check_digit(partial)
    brand, reason = validate_pan(pan, BRANDS)
    if reason is None:
        assert brand is not None and luhn_valid(pan)
