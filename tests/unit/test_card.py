"""Card rules: Luhn, brand from IIN, lengths, CVV, expiry, masking."""

from __future__ import annotations

import datetime

import pytest

from payivr.core import card
from payivr.core.card import (
    BRANDS,
    brand_candidates,
    cvv_length,
    detect_brand,
    last4,
    luhn_check_digit,
    luhn_valid,
    mask_pan,
    parse_expiry,
    validate_cvv,
    validate_expiry,
    validate_pan,
)

TODAY = datetime.date(2026, 11, 21)

# Published network test numbers (all Luhn-valid).
KNOWN = [
    ("4111111111111111", "visa"),
    ("4222222222222", "visa"),
    ("5555555555554444", "mastercard"),
    ("2223003122003222", "mastercard"),
    ("2720990000000007", "mastercard"),
    ("378282246310005", "amex"),
    ("371449635398431", "amex"),
    ("6011111111111117", "discover"),
    ("6445644564456445", "discover"),
    ("30569309025904", "diners"),
    ("36227206271667", "diners"),
    ("3566002020360505", "jcb"),
    ("6759649826438453", "maestro"),
    ("6200000000000005", "unionpay"),
]


class Revealable:
    """Stands in for SecretDigits: the rules must accept anything with reveal()."""

    def __init__(self, text: str) -> None:
        self._text = text

    def reveal(self) -> str:
        return self._text


@pytest.mark.parametrize(("pan", "brand"), KNOWN)
def test_known_test_cards_are_valid_with_their_brand(pan: str, brand: str) -> None:
    assert luhn_valid(pan)
    assert detect_brand(pan) == brand
    assert validate_pan(pan, BRANDS) == (brand, None)


def test_luhn_rejects_a_changed_digit() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111111111111121")


@pytest.mark.parametrize("bad", ["", "0", "41111x1111111111", "٤١١١١١١١١١١١١١١١"])
def test_luhn_rejects_non_digits_and_too_short(bad: str) -> None:
    assert not luhn_valid(bad)


def test_luhn_check_digit() -> None:
    assert luhn_check_digit("411111111111111") == "1"
    assert luhn_check_digit("7992739871") == "3"
    with pytest.raises(ValueError):
        luhn_check_digit("12a")


def test_mastercard_two_series_bounds() -> None:
    assert detect_brand("2221000000000009") == "mastercard"
    assert detect_brand("2720999999999999") == "mastercard"
    assert detect_brand("2220999999999999") is None
    assert detect_brand("2721000000000000") is None


@pytest.mark.parametrize(
    ("prefix", "brand"),
    [
        ("4", "visa"),
        ("51", "mastercard"),
        ("55", "mastercard"),
        ("56", None),
        ("34", "amex"),
        ("37", "amex"),
        ("35", None),
        ("3528", "jcb"),
        ("3589", "jcb"),
        ("3590", None),
        ("300", "diners"),
        ("305", "diners"),
        ("306", None),
        ("3095", "diners"),
        ("36", "diners"),
        ("38", "diners"),
        ("39", "diners"),
        ("6011", "discover"),
        ("6012", None),
        ("644", "discover"),
        ("649", "discover"),
        ("65", "discover"),
        ("5018", "maestro"),
        ("5020", "maestro"),
        ("5038", "maestro"),
        ("5893", "maestro"),
        ("6304", "maestro"),
        ("6759", "maestro"),
        ("6761", "maestro"),
        ("6763", "maestro"),
        ("6764", None),
        ("62", "unionpay"),
        ("81", "unionpay"),
        ("1", None),
        ("9", None),
    ],
)
def test_brand_by_prefix(prefix: str, brand: str | None) -> None:
    assert detect_brand(prefix + "0" * (16 - len(prefix))) == brand


def test_longest_prefix_wins_and_candidates_are_ordered() -> None:
    # 622126-622925 is inside UnionPay's 62 and is also a Discover range.
    assert brand_candidates("6221260000000000") == ["discover", "unionpay"]
    assert detect_brand("6221260000000000") == "discover"
    assert detect_brand("6221250000000000") == "unionpay"
    assert detect_brand("6229250000000000") == "discover"
    assert detect_brand("6229260000000000") == "unionpay"


def test_co_branded_card_uses_the_brand_the_merchant_accepts() -> None:
    pan = "622126000000000" + luhn_check_digit("622126000000000")
    assert validate_pan(pan, ["discover", "unionpay"]) == ("discover", None)
    assert validate_pan(pan, ["unionpay"]) == ("unionpay", None)
    assert validate_pan(pan, ["visa"]) == ("discover", "brand-not-accepted")


@pytest.mark.parametrize(
    ("pan", "reason"),
    [
        ("41111111111", "too-short"),
        ("", "too-short"),
        ("41111111111111111111", "too-long"),
        ("9111111111111111", "unknown-brand"),
        ("411111111111111", "wrong-length"),  # 15 digits: not a Visa length
        ("37828224631000", "wrong-length"),  # 14 digits Amex
        ("5555555555554", "wrong-length"),  # 13 digits Mastercard
        ("4111111111111112", "invalid-number"),
        ("41111111111x1111", "not-digits"),
    ],
)
def test_validate_pan_reasons(pan: str, reason: str) -> None:
    assert validate_pan(pan, BRANDS)[1] == reason


def test_validate_pan_brand_not_accepted() -> None:
    assert validate_pan("378282246310005", ["visa", "mastercard"]) == (
        "amex",
        "brand-not-accepted",
    )
    assert validate_pan("4111111111111111", ["visa"]) == ("visa", None)


@pytest.mark.parametrize("length", sorted(card.PAN_LENGTHS["maestro"]))
def test_maestro_accepts_12_to_19(length: int) -> None:
    body = "6759" + "0" * (length - 5)
    assert validate_pan(body + luhn_check_digit(body), BRANDS) == ("maestro", None)


def test_validators_accept_revealable_objects() -> None:
    assert validate_pan(Revealable("4111111111111111"), BRANDS) == ("visa", None)
    assert validate_expiry(Revealable("1228"), TODAY) is None
    assert validate_cvv(Revealable("123"), "visa") is None
    assert mask_pan(Revealable("4111111111111111")) == "************1111"
    assert luhn_valid(Revealable("4111111111111111"))


def test_cvv_length_per_brand() -> None:
    assert cvv_length("amex") == 4
    for brand in BRANDS:
        if brand != "amex":
            assert cvv_length(brand) == 3
    assert cvv_length(None) is None


@pytest.mark.parametrize(
    ("cvv", "brand", "reason"),
    [
        ("123", "visa", None),
        ("1234", "amex", None),
        ("12", "visa", "too-short"),
        ("123", "amex", "too-short"),
        ("1234", "visa", "too-long"),
        ("12345", "amex", "too-long"),
        ("", "visa", "too-short"),
        ("12a", "visa", "not-digits"),
        ("123", None, None),
        ("1234", None, None),
        ("12", None, "too-short"),
        ("12345", None, "too-long"),
    ],
)
def test_validate_cvv(cvv: str, brand: str | None, reason: str | None) -> None:
    assert validate_cvv(cvv, brand) == reason


@pytest.mark.parametrize(
    ("mmyy", "reason"),
    [
        ("1126", None),  # the current month is still valid
        ("1226", None),
        ("0127", None),
        ("1046", None),  # exactly 20 years ahead
        ("1146", None),
        ("1246", "too-far-ahead"),
        ("0199", "too-far-ahead"),
        ("1026", "expired"),
        ("1225", "expired"),
        ("0000", "invalid-month"),
        ("1327", "invalid-month"),
        ("0027", "invalid-month"),
        ("127", "too-short"),
        ("", "too-short"),
        ("12277", "too-long"),
        ("12a7", "not-digits"),
    ],
)
def test_validate_expiry(mmyy: str, reason: str | None) -> None:
    assert validate_expiry(mmyy, TODAY) == reason


def test_parse_expiry() -> None:
    assert parse_expiry("0528") == (2028, 5)
    assert parse_expiry("1328") is None
    assert parse_expiry("528") is None


def test_masking_shows_last_four_only() -> None:
    assert mask_pan("4111111111111111") == "************1111"
    assert mask_pan("378282246310005") == "***********0005"
    assert mask_pan("12345") == "*****"
    assert mask_pan("") == ""
    assert last4("4111111111111111") == "1111"
    assert last4("1234") == ""
