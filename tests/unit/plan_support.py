"""Builders for the capture-plan, sandbox and simulate tests."""

from __future__ import annotations

import dataclasses
import datetime
from functools import cache
from typing import Any

from payivr.core.config import MerchantConfig, load_config
from payivr.core.plan import CapturePlan, Command, DigitsEntered, Field, ProcessorAnswered
from payivr.core.plan.table import FIELD_OF_STATE
from payivr.core.processor import Operation, ProcessorAnswer, ResultCode
from payivr.core.request import PaymentRequest, ReturnTarget
from payivr.core.secrets import SecretDigits
from tests.conftest import EXAMPLE_CONFIG
from tests.support.builders import payment_request

TODAY = datetime.date(2026, 11, 21)
VISA = "4111111111111111"
AMEX = "378282246310005"
# SPEC 8 sandbox cards and the usual Visa test number: no test output may show them.
TEST_PANS = (
    VISA,
    AMEX,
    "4000000000000002",
    "4000000000009995",
    "4000000000000069",
    "4000000000000119",
    "4000000000000259",
)


@cache
def acme() -> MerchantConfig:
    merchant = load_config(EXAMPLE_CONFIG).merchant("acme")
    assert merchant is not None
    return merchant


def merchant(brands: frozenset[str] | None = None, **capture: Any) -> MerchantConfig:
    """The example config's merchant with capture settings (and brands) changed."""
    base = acme()
    changed = dataclasses.replace(base.capture, **capture)
    return dataclasses.replace(base, capture=changed, brands=brands or base.brands)


def request(
    operation: Operation = Operation.SALE,
    *,
    amount: int | None = None,
    token: str | None = None,
    return_to: str = "hangup",
) -> PaymentRequest:
    if amount is None:
        amount = 0 if operation is Operation.TOKENIZE else 1250
    target = (
        ReturnTarget("uri", "sip:queue@127.0.0.1") if return_to == "uri" else ReturnTarget("hangup")
    )
    return payment_request(operation=operation, amount=amount, return_to=target, token=token)


def new_plan(
    operation: Operation = Operation.SALE,
    *,
    token: str | None = None,
    return_to: str = "hangup",
    brands: frozenset[str] | None = None,
    **capture: Any,
) -> CapturePlan:
    return CapturePlan(
        request(operation, token=token, return_to=return_to),
        merchant(brands, **capture),
        TODAY,
    )


def key(plan: CapturePlan, text: str, terminator: str | None = "#") -> list[Command]:
    """Key ``text`` into whatever field the plan is collecting."""
    field: Field = FIELD_OF_STATE[plan.state]
    return plan.handle(DigitsEntered(field, SecretDigits(text), terminator))


def answer(
    code: ResultCode = ResultCode.APPROVED,
    reason: str | None = None,
    auth_code: str | None = "123456",
    token: str | None = None,
) -> ProcessorAnswered:
    return ProcessorAnswered(ProcessorAnswer(code, reason, auth_code, token, raw_code="00"))
