"""payivr.core.orphan: what Kamailio does with a BYE from FreeSWITCH, how far ahead the
watchdog's deadline goes, and the result an orphaned session gets."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from payivr.core.config import load_config
from payivr.core.orphan import ByeAction, WatchBudget, bye_action, orphan_result
from payivr.core.processor import Operation, ResultCode
from payivr.core.request import PaymentRequest, ReturnTarget
from payivr.core.session import Session
from tests.conftest import EXAMPLE_CONFIG

SID = "abcdefghijklmnopqrstuvwxyz"


def test_a_bye_without_result_headers_or_with_a_signed_result_is_relayed() -> None:
    assert bye_action([]) == (ByeAction.RELAY, None)
    signed = [("X-Pay-Result", "approved"), ("X-Pay-Session", SID), ("X-Pay-Signature", "v1=ab")]
    assert bye_action(signed) == (ByeAction.RELAY, None)


def test_unsigned_result_headers_naming_a_session_finalise_it() -> None:
    fallback = [
        ("X-Pay-Result", "failed"),
        ("x-pay-reason", "ivr-unavailable"),
        ("X-Pay-Session", SID),
        ("X-Pay-Signature", " "),  # empty is absent (SPEC 2)
    ]
    assert bye_action(fallback) == (ByeAction.FINALISE, SID)


def test_unsigned_result_headers_without_a_usable_session_are_stripped() -> None:
    assert bye_action([("X-Pay-Result", "failed")]) == (ByeAction.STRIP, None)
    assert bye_action([("X-Pay-Session", "short")]) == (ByeAction.STRIP, None)
    assert bye_action([("X-Pay-Session", "a" * 20 + ";x")]) == (ByeAction.STRIP, None)


def test_the_watch_step_covers_the_longest_entry_or_the_processor_call() -> None:
    merchant = load_config(EXAMPLE_CONFIG).merchants["acme"]
    budget = WatchBudget(prompt_allowance_s=30, answer_allowance_s=60, margin_s=30)
    capture = dataclasses.replace(merchant.capture, field_timeout_ms=15000, digit_timeout_ms=5000)
    slow_entry = dataclasses.replace(merchant, capture=capture)
    # 30 prompts + 15 s for the first digit + 19 digits x 5 s, + 30 margin.
    assert budget.step_s(slow_entry) == 30 + 15 + 95 + 30
    slow_processor = dataclasses.replace(
        slow_entry, processor=dataclasses.replace(merchant.processor, timeout_s=100.0)
    )
    # The processor call and its reversal (2 x 100 s + 1 s grace) outlast an entry.
    assert budget.step_s(slow_processor) == 30 + 201 + 30
    assert budget.admission_deadline(1000.0, budget.step_s(slow_entry)) == 1000.0 + 60 + 170


def test_an_orphaned_session_is_a_full_failed_result() -> None:
    request = PaymentRequest(
        merchant="acme",
        operation=Operation.SALE_TOKENIZE,
        order="A9",
        amount=990,
        currency="USD",
        language="en",
        return_to=ReturnTarget("hangup"),
        call_id="c@cti",
        token="ref-1",
    )
    created = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    session = Session.new(request, created, SID)
    result = orphan_result(session, datetime(2026, 12, 1, 10, 3, tzinfo=UTC), "evt_1")
    assert (result.code, result.reason) == (ResultCode.FAILED, "ivr-unavailable")
    assert (result.amount, result.currency, result.order) == (990, "USD", "A9")
    assert result.token is None and result.auth_code is None
    assert (result.created_at, result.completed_at) == (
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:03:00Z",
    )
