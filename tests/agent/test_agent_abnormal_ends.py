"""Agent mode ends abnormally: card data wiped, the processor's answer still recorded.

Issue 11, item 7: a caller hanging up while "processing" plays used to drop the
payment (no processor call, no result, the card kept until the process ended).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

from payivr.core.processor import ChargeRequest, ProcessorAnswer, ResultCode
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_agent_calls import CARD_OK, CVV, EXPIRY, assert_no_card_data, start_payment
from tests.esl.peer import Keys


class KeepingProcessor:
    """Approves, keeping each ChargeRequest so the test can see its card wiped after."""

    def __init__(self) -> None:
        self.requests: list[ChargeRequest] = []
        self.asked = threading.Event()

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        self.requests.append(request)
        self.asked.set()
        return ProcessorAnswer(ResultCode.APPROVED, auth_code="654321", raw_code="00")

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        raise AssertionError("no reversal expected")


def test_hangup_while_processing_plays_records_the_answer_and_wipes_the_card(
    agent_stack: AgentStack,
) -> None:
    stack = agent_stack
    processor = KeepingProcessor()
    assert stack.service is not None
    stack.service.services.processors["acme"] = processor
    # Prompts mixed in: greeting, amount-intro, the three fields', then "processing".
    fake, done = stack.call(
        [Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)], hangup_during=("displace", 6)
    )
    call = stack.find_call()
    sse = SseReader(stack, call["call"])
    payment = start_payment(stack, call["call"], "W5001", callback_url="http://127.0.0.1:9/cb")
    result = sse.wait(lambda e: e["type"] == "payment.result", timeout=15)
    # Money may have moved: the processor's answer is the result, not "cancelled".
    assert result["result"]["result"] == "approved"
    assert processor.asked.is_set() and len(processor.requests) == 1
    card = processor.requests[0].card
    assert card is not None and card.wiped
    stored = stack.api("GET", f"/v1/payments/{payment}").json()
    assert stored["state"] == "done" and stored["result"]["result"] == "approved"
    assert stack.redis.xlen("payivr:outbox") == 1
    done.result(10)
    assert fake.errors == []
    assert fake.played[-1][1].endswith("/processing.wav")
    assert_no_card_data(stack.redis_dump(), "\n".join(sse.raw))


class StuckProcessor(KeepingProcessor):
    """Answers only when the test releases it (an adapter hanging on its network)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        self.requests.append(request)
        self.asked.set()
        self.release.wait(20)
        return ProcessorAnswer(ResultCode.DECLINED, "card-declined", raw_code="05")


def test_payment_cut_while_the_processor_works_wipes_the_card(agent_stack: AgentStack) -> None:
    stack = agent_stack
    processor = StuckProcessor()
    assert stack.service is not None
    stack.service.services.processors["acme"] = processor
    _fake, _done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)])
    call = stack.find_call()
    start_payment(stack, call["call"], "W5002")
    try:
        assert processor.asked.wait(15)
        card = processor.requests[0].card
        assert card is not None and not card.wiped
        # The service stops with the processor still working: the payment is cut off
        # (cancelled) and nothing of the card may outlive it.
        stack.submit(stack.service.esl.stop(grace_s=0.2)).result(15)
        assert card.wiped
    finally:
        processor.release.set()


class IgnoresItsTimeout(KeepingProcessor):
    """Answers `approved` well after the merchant's timeout; voids when asked."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.reversed = threading.Event()

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        self.requests.append(request)
        self.asked.set()
        threading.Event().wait(self.delay_s)
        return ProcessorAnswer(ResultCode.APPROVED, auth_code="654321", raw_code="00")

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        self.reversed.set()
        return ProcessorAnswer(ResultCode.APPROVED, raw_code="VOIDED")


def test_the_agents_processor_call_has_the_same_outer_deadline(
    tmp_path: Path, redis_url: str
) -> None:
    stack = AgentStack(tmp_path, redis_url)
    acme = stack.config.merchants["acme"]
    fast = dataclasses.replace(acme, processor=dataclasses.replace(acme.processor, timeout_s=0.3))
    stack.config = dataclasses.replace(
        stack.config, merchants={**stack.config.merchants, "acme": fast}
    )
    stack.start()
    try:
        processor = IgnoresItsTimeout(delay_s=4.0)  # the budget: 2 x 0.3 s + 1 s grace
        assert stack.service is not None
        stack.service.services.processors["acme"] = processor
        fake, done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)])
        call = stack.find_call()
        sse = SseReader(stack, call["call"])
        payment = start_payment(stack, call["call"], "W5003")
        result = sse.wait(lambda e: e["type"] == "payment.result", timeout=15)
        assert (result["result"]["result"], result["result"]["reason"]) == (
            "failed",
            "processor-timeout",
        )
        # The late approval is voided and recorded on the session for operators.
        assert processor.reversed.wait(15)
        key = f"payivr:session:{payment}"
        deadline = time.monotonic() + 10
        while stack.redis.hget(key, "reversal") != b"reversed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stack.redis.hget(key, "reversal") == b"reversed"
        card = processor.requests[0].card
        assert card is not None and card.wiped
        stack.on_loop(fake.hang_up_now)
        done.result(10)
    finally:
        stack.close()
