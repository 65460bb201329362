"""The one card-number detector: what in a piece of text could be a PAN.

PURE. Used by the log filter (mask), admission (refuse a request header) and the
agent API (refuse a typed field), so the three can never disagree again.

The rule (docs/contract-notes.md explains the choices):

* a candidate is a run of 12 or more digits (SPEC 6: a PAN has 12-19; a longer
  run may be a PAN glued to an expiry or a CVV), where single spaces or dashes
  between digits are tolerated (``4111 1111 1111 1111``);
* Luhn is not consulted: a mistyped PAN is still 15 of a card's 16 digits, Luhn
  lets one random number in ten through, and a rule that refuses one numeric order
  id in ten at random is worse for an integrator than one that is predictable;
* a candidate that lies wholly inside an identifier is not card data: a UUID, a
  hex identifier (only 0-9 a-f, at least one letter), a payivr session id (26
  characters of base32), a Redis stream id (13-digit milliseconds, a dash, a
  sequence number), or the user part of a Call-ID or SIP URI (it ends right before
  ``@host``). Those keep logs correlatable; a card number is written on its own,
  after a space, ``=``, ``:`` or a quote, not inside a hex string or before ``@``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MIN_DIGITS = 12

# 12+ digits, optionally separated by single spaces or dashes; greedy, so a grouped
# number is one candidate however it is grouped.
_CANDIDATE = re.compile(rf"(?<![0-9])(?<![0-9][ -])[0-9](?:[ -]?[0-9]){{{MIN_DIGITS - 1},}}")
_HEX = r"[0-9a-fA-F]"
_IDENTIFIERS = re.compile(
    "|".join(
        (
            # A UUID, whatever its groups hold (FreeSWITCH channel ids, event ids).
            rf"(?<![0-9A-Za-z-]){_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?![0-9A-Za-z-])",
            # A hex identifier with at least one letter (Call-IDs, hashes, trace ids).
            rf"(?<![0-9A-Za-z]){_HEX}*[a-fA-F]{_HEX}*(?![0-9A-Za-z])",
            # A Redis stream id: milliseconds since 1970 (13 digits), "-", a sequence.
            r"(?<![0-9A-Za-z-])[0-9]{13}-[0-9]{1,6}(?![0-9A-Za-z-])",
            # A payivr session id (payivr.core.session.new_session_id).
            r"(?<![0-9A-Za-z])[a-z2-7]{26}(?![0-9A-Za-z])",
            # The user part of a Call-ID or SIP URI: anything up to an "@".
            r"(?<![^\s<:;,\"'(=])[^\s<>@:;,\"'()=]+(?=@[A-Za-z0-9\[])",
        )
    )
)


def card_number_spans(text: str) -> Iterator[tuple[int, int]]:
    """The (start, end) of every run in ``text`` that could be a card number."""
    candidates = list(_CANDIDATE.finditer(text))
    if not candidates:
        return
    identifiers = [m.span() for m in _IDENTIFIERS.finditer(text)]
    for match in candidates:
        start, end = match.span()
        if not any(lo <= start and end <= hi for lo, hi in identifiers):
            yield start, end


def contains_card_number(text: str) -> bool:
    """Does ``text`` hold anything that could be a card number? (see the module doc)"""
    return next(card_number_spans(text), None) is not None


def mask_card_numbers(text: str, mask: str) -> str:
    """``text`` with every possible card number replaced by ``mask``."""
    spans = list(card_number_spans(text))
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(mask)
        last = end
    parts.append(text[last:])
    return "".join(parts)
