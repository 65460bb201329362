"""One ISO 4217 table: what is said (ESL) and what is printed (simulate) agree."""

from __future__ import annotations

import pytest

from payivr.core.currency import EXPONENTS, exponent, format_amount, split_amount


@pytest.mark.parametrize(
    ("amount", "currency", "parts"),
    [
        (1250, "EUR", (12, 50)),
        (1250, "eur", (12, 50)),
        (1250, "JPY", (1250, 0)),
        (1234, "KWD", (1, 234)),
        (1234, "UYI", (1234, 0)),  # missing from the ESL executor's old copy
        (123456, "CLF", (12, 3456)),
    ],
)
def test_split_amount(amount: int, currency: str, parts: tuple[int, int]) -> None:
    assert split_amount(amount, currency) == parts


@pytest.mark.parametrize("currency", [*EXPONENTS, "EUR", "USD"])
def test_said_and_printed_amounts_agree_for_every_currency(currency: str) -> None:
    major, minor = split_amount(987654, currency)
    text = format_amount(987654, currency)
    if exponent(currency) == 0:
        assert (text, minor) == (f"987654 {currency}", 0)
    else:
        assert text == f"{major}.{minor:0{exponent(currency)}d} {currency}"
        assert major * 10 ** exponent(currency) + minor == 987654
