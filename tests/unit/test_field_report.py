from __future__ import annotations

from payivr.core.plan.fields import Field
from payivr.core.plan.machine import FieldReport


def test_field_completed_event_carries_verdicts_never_digits() -> None:
    report = FieldReport(Field.CARD_NUMBER, True, None, 16, "visa")
    assert report.event_fields() == {
        "field": "card_number",
        "valid": "true",
        "digit_count": "16",
        "brand": "visa",
    }
    bad = FieldReport(Field.EXPIRY, False, "expired", 4)
    assert bad.event_fields() == {
        "field": "expiry",
        "valid": "false",
        "digit_count": "4",
        "reason": "expired",
    }
