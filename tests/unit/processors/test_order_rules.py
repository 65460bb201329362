"""Order id narrowing per processor (payivr.core.order_rules)."""

from __future__ import annotations

import pytest

from payivr.core.order_rules import check_order


@pytest.mark.parametrize("order", ["1234", "1234567890", "1234abcdEFGH", "000000000001"])
def test_redsys_accepts_its_orders(order: str) -> None:
    assert check_order("redsys", order) is None


@pytest.mark.parametrize(
    ("order", "fragment"),
    [
        ("123", "4 to 12"),
        ("1234567890123", "4 to 12"),
        ("12a45678", "first 4"),
        ("abcd5678", "first 4"),
        ("\u0661\u0662\u0663\u066456", "first 4"),  # Arabic-Indic digits are not ASCII
        ("1234_567", "letters and digits"),
        ("1234-567", "letters and digits"),
    ],
)
def test_redsys_rejects_with_a_reason(order: str, fragment: str) -> None:
    problem = check_order("redsys", order)
    assert problem is not None and fragment in problem
    assert order not in problem


@pytest.mark.parametrize("processor_type", ["sandbox", "http"])
def test_other_processors_take_any_spec_order(processor_type: str) -> None:
    assert check_order(processor_type, "A_b-c") is None
    assert check_order(processor_type, "x" * 32) is None
