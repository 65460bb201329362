"""Card rules: Luhn, brand from IIN, lengths, CVV length, expiry, masking.

Pure functions. Each validator returns ``None`` when the entry is good, or a stable
machine reason (``too-short``, ``invalid-number``, ...) that the capture plan maps to
a re-prompt and that shows up in ``field.completed`` events. A reason never contains
the digits themselves, so it is safe to log.

The functions accept either a plain ``str`` or anything with a ``reveal() -> str``
method (``payivr.core.secrets.SecretDigits``), so the plan can pass keyed digits
without first copying them into a longer-lived string of its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

MIN_PAN_LENGTH = 12
MAX_PAN_LENGTH = 19
# How far ahead an expiry date may be. Issuers print 3-5 years, some up to 10; beyond
# 20 the caller has almost certainly keyed the wrong thing.
MAX_EXPIRY_YEARS_AHEAD = 20

BRANDS: tuple[str, ...] = (
    "visa",
    "mastercard",
    "amex",
    "discover",
    "diners",
    "jcb",
    "maestro",
    "unionpay",
)


class _Revealable(Protocol):
    def reveal(self) -> str: ...


Digits = str | _Revealable


def _text(digits: Digits) -> str:
    return digits if isinstance(digits, str) else digits.reveal()


@dataclass(frozen=True)
class _IinRange:
    """Card numbers whose first ``len(low)`` digits are within [low, high]."""

    low: str
    high: str
    brand: str

    @property
    def width(self) -> int:
        return len(self.low)

    def matches(self, pan: str) -> bool:
        head = pan[: self.width]
        return len(head) == self.width and self.low <= head <= self.high


def _r(low: str, high: str | None, brand: str) -> _IinRange:
    return _IinRange(low, high if high is not None else low, brand)


# Public IIN ranges of the networks (ISO/IEC 7812 issuer identification numbers).
# Where ranges overlap, the longest prefix is the more specific one and wins (for
# example 622126-622925, UnionPay cards that the Discover network also acquires).
IIN_RANGES: tuple[_IinRange, ...] = (
    _r("4", None, "visa"),
    _r("51", "55", "mastercard"),
    _r("2221", "2720", "mastercard"),
    _r("34", None, "amex"),
    _r("37", None, "amex"),
    _r("6011", None, "discover"),
    _r("644", "649", "discover"),
    _r("65", None, "discover"),
    _r("622126", "622925", "discover"),
    _r("300", "305", "diners"),
    _r("3095", None, "diners"),
    _r("36", None, "diners"),
    _r("38", "39", "diners"),
    _r("3528", "3589", "jcb"),
    _r("5018", None, "maestro"),
    _r("5020", None, "maestro"),
    _r("5038", None, "maestro"),
    _r("5893", None, "maestro"),
    _r("6304", None, "maestro"),
    _r("6759", None, "maestro"),
    _r("6761", "6763", "maestro"),
    _r("62", None, "unionpay"),
    _r("81", None, "unionpay"),
)

PAN_LENGTHS: dict[str, frozenset[int]] = {
    "visa": frozenset({13, 16, 19}),
    "mastercard": frozenset({16}),
    "amex": frozenset({15}),
    "discover": frozenset(range(16, 20)),
    "diners": frozenset({14, *range(16, 20)}),
    "jcb": frozenset(range(16, 20)),
    "maestro": frozenset(range(12, 20)),
    "unionpay": frozenset(range(16, 20)),
}


def luhn_valid(number: Digits) -> bool:
    """True when ``number`` is all digits, at least 2 long, and passes the Luhn check."""
    text = _text(number)
    if len(text) < 2 or not _all_digits(text):
        return False
    return _luhn_sum(text) % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that, appended to ``partial``, makes a Luhn-valid number."""
    if not _all_digits(partial):
        raise ValueError("luhn_check_digit needs digits only")
    return str((10 - _luhn_sum(partial + "0") % 10) % 10)


def _luhn_sum(text: str) -> int:
    total = 0
    # From the right: every second digit (starting with the one left of the check
    # digit) is doubled, and 9 is subtracted from doubles above 9.
    for index, char in enumerate(reversed(text)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def _all_digits(text: str) -> bool:
    # str.isdigit() accepts other scripts' digits (e.g. Arabic-Indic); DTMF is ASCII.
    return all("0" <= c <= "9" for c in text)


def brand_candidates(pan: Digits) -> list[str]:
    """Every brand whose IIN range matches, most specific (longest prefix) first."""
    text = _text(pan)
    if not text or not _all_digits(text):
        return []
    matching = sorted(
        (r for r in IIN_RANGES if r.matches(text)), key=lambda r: r.width, reverse=True
    )
    brands: list[str] = []
    for r in matching:
        if r.brand not in brands:
            brands.append(r.brand)
    return brands


def detect_brand(pan: Digits) -> str | None:
    """The card brand from its IIN (longest matching prefix wins), or None if unknown."""
    candidates = brand_candidates(pan)
    return candidates[0] if candidates else None


def cvv_length(brand: str | None) -> int | None:
    """Security code length for a brand: 4 for Amex, 3 for others, None if unknown."""
    if brand is None:
        return None
    return 4 if brand == "amex" else 3


def validate_pan(pan: Digits, accepted_brands: Collection[str]) -> tuple[str | None, str | None]:
    """Check a keyed card number. Returns ``(brand, reason)``.

    ``reason`` is None when the number is acceptable; ``brand`` is then the brand to
    use: the most specific one the merchant accepts (co-branded ranges can match two
    brands). The order of checks gives the caller the most useful re-prompt first:
    ``not-digits``, ``too-short``, ``too-long``, ``unknown-brand``, ``wrong-length``
    (the length does not fit the brand), ``invalid-number`` (Luhn), and last
    ``brand-not-accepted`` (a real card of a brand the merchant does not take).
    """
    text = _text(pan)
    if not _all_digits(text):
        return None, "not-digits"
    if len(text) < MIN_PAN_LENGTH:
        return None, "too-short"
    if len(text) > MAX_PAN_LENGTH:
        return None, "too-long"
    candidates = brand_candidates(text)
    if not candidates:
        return None, "unknown-brand"
    fitting = [b for b in candidates if len(text) in PAN_LENGTHS[b]]
    if not fitting:
        return candidates[0], "wrong-length"
    if not luhn_valid(text):
        return fitting[0], "invalid-number"
    for brand in fitting:
        if brand in accepted_brands:
            return brand, None
    return fitting[0], "brand-not-accepted"


def parse_expiry(mmyy: Digits) -> tuple[int, int] | None:
    """``MMYY`` as ``(year, month)`` (year 20YY), or None when not 4 digits / bad month."""
    text = _text(mmyy)
    if len(text) != 4 or not _all_digits(text):
        return None
    month = int(text[:2])
    if not 1 <= month <= 12:
        return None
    return 2000 + int(text[2:]), month


def validate_expiry(mmyy: Digits, today: datetime.date) -> str | None:
    """Check a keyed ``MMYY`` expiry against ``today``; None when good, else a reason.

    Reasons: ``not-digits``, ``too-short``, ``too-long``, ``invalid-month``,
    ``expired`` (before the current month; a card is valid through its whole expiry
    month), ``too-far-ahead`` (more than 20 years ahead).
    """
    text = _text(mmyy)
    if not _all_digits(text):
        return "not-digits"
    if len(text) < 4:
        return "too-short"
    if len(text) > 4:
        return "too-long"
    parsed = parse_expiry(text)
    if parsed is None:
        return "invalid-month"
    year, month = parsed
    if (year, month) < (today.year, today.month):
        return "expired"
    if (year, month) > (today.year + MAX_EXPIRY_YEARS_AHEAD, today.month):
        return "too-far-ahead"
    return None


def validate_cvv(cvv: Digits, brand: str | None) -> str | None:
    """Check a keyed security code; None when good, else a reason.

    With a known brand the length is exact (4 Amex, 3 others); without one (a token
    sale, where the card is not keyed) 3 or 4 digits are accepted.
    """
    text = _text(cvv)
    if not _all_digits(text):
        return "not-digits"
    expected = cvv_length(brand)
    shortest, longest = (expected, expected) if expected is not None else (3, 4)
    if len(text) < shortest:
        return "too-short"
    if len(text) > longest:
        return "too-long"
    return None


def mask_pan(pan: Digits) -> str:
    """``************1111``: asterisks for all but the last four digits.

    A number shorter than 12 digits is not a card number and is masked entirely, so
    the last four never amount to a large part of what was keyed.
    """
    text = _text(pan)
    if len(text) < MIN_PAN_LENGTH:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


def last4(pan: Digits) -> str:
    """The last four digits of a card number (empty when shorter than 12 digits)."""
    text = _text(pan)
    return text[-4:] if len(text) >= MIN_PAN_LENGTH else ""
