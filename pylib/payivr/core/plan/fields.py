"""The fields the capture plan collects by DTMF."""

from __future__ import annotations

import enum


class Field(enum.StrEnum):
    """A DTMF entry the plan asks for. ``confirm`` is the 1/2 choice, not card data."""

    CARD_NUMBER = "card_number"
    EXPIRY = "expiry"
    CVV = "cvv"
    CONFIRM = "confirm"
    # Speech input: "I heard 4 1 1 1: is that right?" (yes/no, or keys 1/2).
    READBACK = "readback"

    @property
    def is_card_data(self) -> bool:
        """True for the fields whose digits are cardholder data (recording masked)."""
        return self not in (Field.CONFIRM, Field.READBACK)
