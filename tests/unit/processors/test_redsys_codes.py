"""Ds_Response / errorCode mapping to SPEC 7 results (payivr.processors.redsys.codes)."""

from __future__ import annotations

import pytest

from payivr.core.processor import ResultCode
from payivr.processors.redsys.codes import (
    map_charge_response,
    map_error_code,
    map_reversal_response,
    parse_response_code,
)


@pytest.mark.parametrize(
    ("code", "result", "reason"),
    [
        (0, ResultCode.APPROVED, None),
        (99, ResultCode.APPROVED, None),
        (101, ResultCode.DECLINED, "card-expired"),
        (116, ResultCode.DECLINED, "insufficient-funds"),
        (129, ResultCode.DECLINED, "invalid-card"),
        (191, ResultCode.DECLINED, "invalid-card"),
        (190, ResultCode.DECLINED, "card-declined"),
        (208, ResultCode.DECLINED, "card-declined"),  # lost/stolen: never said as such
        (9093, ResultCode.DECLINED, "invalid-card"),
        (913, ResultCode.FAILED, "duplicate-order"),
        (909, ResultCode.FAILED, "processor-error"),
        (9912, ResultCode.FAILED, "processor-error"),
        (400, ResultCode.FAILED, "processor-error"),  # a cancellation code is no payment
        (900, ResultCode.FAILED, "processor-error"),
    ],
)
def test_charge_codes(code: int, result: ResultCode, reason: str | None) -> None:
    assert map_charge_response(code) == (result, reason)


@pytest.mark.parametrize(
    ("code", "result", "reason"),
    [
        (400, ResultCode.APPROVED, None),
        (481, ResultCode.APPROVED, None),
        (480, ResultCode.APPROVED, "nothing-to-reverse"),
        (0, ResultCode.FAILED, "processor-error"),
        (909, ResultCode.FAILED, "processor-error"),
    ],
)
def test_reversal_codes(code: int, result: ResultCode, reason: str | None) -> None:
    assert map_reversal_response(code) == (result, reason)


def test_error_codes() -> None:
    assert map_error_code("SIS0051") == (ResultCode.FAILED, "duplicate-order")
    assert map_error_code("SIS0042") == (ResultCode.FAILED, "processor-error")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0000", 0),
        ("0190", 190),
        (116, 116),
        ("9912", 9912),
        ("", None),
        ("12345", None),
        ("01a0", None),
        (None, None),
        (True, None),
        ("\u0661\u0662", None),
    ],
)
def test_parse_response_code(raw: object, expected: int | None) -> None:
    assert parse_response_code(raw) == expected
