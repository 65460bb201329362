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


def _merchant(processor: dict[str, object]) -> object:
    import copy
    from pathlib import Path

    import yaml

    from payivr.core.config import parse_config

    example = Path(__file__).resolve().parents[3] / "config" / "payivr.example.yaml"
    data = copy.deepcopy(yaml.safe_load(example.read_text()))
    data["merchants"]["acme"]["processor"] = processor
    env = {"K": "sq7HjrUOBfKmC576ILgskD5srU870gJ7", "T": "t" * 32}
    return parse_config(data, base_dir=example.parent, environ=env).merchants["acme"]


REDSYS = {
    "type": "redsys",
    "environment": "test",
    "merchant_code": "999008881",
    "terminal": "1",
    "secret_key": "env:K",
}


@pytest.mark.parametrize(
    ("processor", "order", "rejected"),
    [
        (REDSYS, "A-1001", True),
        (REDSYS, "1234567890ABC", True),
        (REDSYS, "2026A1", False),
        ({"type": "sandbox", "token_secret": "env:T"}, "A-1001", False),
    ],
)
def test_the_request_parser_rejects_orders_the_processor_would_refuse(
    processor: dict[str, object], order: str, rejected: bool
) -> None:
    from payivr.core.errors import Rejection
    from payivr.core.request import parse_request

    merchant = _merchant(processor)
    fields = {
        "x-pay-merchant": "acme",
        "x-pay-operation": "sale",
        "x-pay-order": order,
        "x-pay-amount": "1250",
    }
    if not rejected:
        assert parse_request(fields, merchant, call_id="c1").order == order  # type: ignore[arg-type]
        return
    with pytest.raises(Rejection) as info:
        parse_request(fields, merchant, call_id="c1")  # type: ignore[arg-type]
    assert (info.value.status, info.value.header) == (400, "X-Pay-Order")
    assert "Redsys" in info.value.problem
