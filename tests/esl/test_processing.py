"""The processor call's outer deadline: an adapter that ignores its own timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from payivr.core.processor import (
    ChargeRequest,
    ProcessorAnswer,
    ResultCode,
)
from payivr.execution import processing
from tests.support.builders import charge_request


class QuietChannel:
    """A caller who stays on the line."""

    uuid = "call-1"
    hungup = False

    async def wait_hangup(self) -> None:
        await asyncio.Event().wait()


class SlowAdapter:
    """Answers `answer` after `delay_s`, whatever the request's timeout says."""

    def __init__(self, answer: ProcessorAnswer, delay_s: float) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.reversed = threading.Event()
        self.release = threading.Event()

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        self.release.wait(self.delay_s)
        return self.answer

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        assert request.card is None and request.cvv is None  # by key, no card data
        self.reversed.set()
        return ProcessorAnswer(ResultCode.APPROVED, raw_code="VOIDED")


def charge() -> ChargeRequest:
    return charge_request("P1", pan=None, amount=100, timeout_s=0.05)


async def settle(adapter: SlowAdapter) -> tuple[processing.Settlement, dict[str, str]]:
    with ThreadPoolExecutor(2) as pool:
        settled = await processing.settle_with_timeout(
            adapter,
            charge(),
            pool,
            QuietChannel(),  # type: ignore[arg-type]
            lambda: None,
        )
        assert settled.late is not None
        late = await asyncio.wait_for(settled.late, 5)
        adapter.release.set()
    return settled, late


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processing, "PROCESSOR_GRACE_S", 0.1)  # budget 2 x 0.05 + 0.1 s


def test_a_late_approval_is_voided_and_the_caller_hears_failed() -> None:
    adapter = SlowAdapter(ProcessorAnswer(ResultCode.APPROVED, auth_code="1", raw_code="00"), 0.4)
    settled, late = asyncio.run(settle(adapter))
    assert (settled.answer.code, settled.answer.reason) == (ResultCode.FAILED, "processor-timeout")
    assert settled.session_fields() == {
        "processor_raw_code": "payivr:timeout",
        "reversal": "pending",
    }
    assert adapter.reversed.is_set()
    assert late == {
        "processor_raw_code": "payivr:timeout",
        "reversal": "reversed",
        "reversal_raw_code": "VOIDED",
    }


def test_a_late_refusal_needs_no_reversal() -> None:
    adapter = SlowAdapter(ProcessorAnswer(ResultCode.DECLINED, "card-declined", raw_code="05"), 0.4)
    settled, late = asyncio.run(settle(adapter))
    assert settled.answer.code is ResultCode.FAILED
    assert late == {"processor_raw_code": "payivr:timeout", "reversal": "not-needed"}
    assert not adapter.reversed.is_set()


def test_an_adapter_that_never_returns_is_reversed_anyway() -> None:
    adapter = SlowAdapter(ProcessorAnswer(ResultCode.APPROVED, raw_code="00"), 30.0)
    started = time.monotonic()
    _, late = asyncio.run(settle(adapter))
    assert late["reversal"] == "reversed" and adapter.reversed.is_set()
    assert time.monotonic() - started < 5
