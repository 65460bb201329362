"""ISO 4217 minor units: how many decimal places an amount's currency has.

Amounts travel in minor units (SPEC 2: 1250 EUR is 12.50 EUR). Saying an amount
(the ESL executor) and printing it (``payivr simulate``) both split it here, so the
two can never disagree about a currency.
"""

from __future__ import annotations

DEFAULT_EXPONENT = 2

# The ISO 4217 currencies whose minor-unit exponent is not 2.
EXPONENTS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def exponent(currency: str) -> int:
    """The number of minor-unit digits of ``currency`` (2 unless listed)."""
    return EXPONENTS.get(currency.upper(), DEFAULT_EXPONENT)


def split_amount(amount: int, currency: str) -> tuple[int, int]:
    """(major, minor) units of an amount given in minor units: 1250 EUR -> (12, 50)."""
    places = exponent(currency)
    if places == 0:
        return amount, 0
    major, minor = divmod(amount, 10**places)
    return major, minor


def format_amount(amount: int, currency: str) -> str:
    """An amount in minor units as text: ``format_amount(1250, "EUR") == "12.50 EUR"``."""
    places = exponent(currency)
    if places == 0:
        return f"{amount} {currency}"
    major, minor = split_amount(amount, currency)
    return f"{major}.{minor:0{places}d} {currency}"
