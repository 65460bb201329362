"""The one card-data search of the tests: what a call left behind must hold no card.

A PAN is searched in full and by its first twelve digits (a prefix long enough to be
card data); expiries and security codes are short, so they are searched as tokens of
their own: not inside a longer digit run (a timestamp, a port) nor inside an
identifier (a channel UUID such as ``...-d737b5`` holds digit runs by chance).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# SPEC 8's sandbox cards and the public approved test number.
SANDBOX_PANS = (
    "4111111111111111",
    "4000000000000002",
    "4000000000009995",
    "4000000000000069",
    "4000000000000119",
    "4000000000000127",
    "4000000000000259",
)


def _long(pan: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9]){re.escape(pan[:12])}")


def _short(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])")


def card_patterns(
    pans: Iterable[str] = SANDBOX_PANS, short: Iterable[str] = ()
) -> list[re.Pattern[str]]:
    """Patterns for ``pans`` (full or a 12-digit prefix) and ``short`` values (expiry,
    CVV) standing alone."""
    return [_long(p) for p in pans] + [_short(s) for s in short]


def find_card_data(
    text: str, *, pans: Iterable[str] = SANDBOX_PANS, short: Iterable[str] = ()
) -> list[str]:
    """The patterns found in ``text``, never the text itself (so a failing assertion
    does not print card data either)."""
    return [p.pattern for p in card_patterns(pans, short) if p.search(text)]
