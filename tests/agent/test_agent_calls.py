"""Agent-assisted payments end to end against the transcript ESL peer and real Redis.

The agent API (HTTP + SSE) and the agent-mode socket run as in production; the fake
FreeSWITCH plays the caller (keys) and records what the agent's leg would get.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.agent.harness import ACME_TOKEN, TEST_PANS, AgentStack, SseReader
from tests.agent.peer import Drop, UntilBreak
from tests.esl.peer import HangUp, Keys
from tests.support import pci

CARD_OK = "4111111111111111"
CARD_DECLINED = "4000000000000002"
EXPIRY = "1230"
CVV = "123"


def start_payment(stack: AgentStack, call: str, order: str, **extra: object) -> str:
    body = {"operation": "sale", "order": order, "amount": 1250, **extra}
    r = stack.api("POST", f"/v1/calls/{call}/payments", body=body)
    assert r.status_code == 202, r.text
    payment: str = r.json()["payment"]
    return payment


def assert_no_card_data(*texts: str) -> None:
    for text in texts:
        assert not pci.find_card_data(text, pans=TEST_PANS)


def field_events(sse: SseReader, payment: str, field: str) -> list[dict[str, object]]:
    return [
        e
        for e in sse.events
        if e.get("type") == "field" and e.get("payment") == payment and e.get("field") == field
    ]


def test_payment_progress_result_and_a_second_payment(
    agent_stack: AgentStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = agent_stack
    fake, done = stack.call(
        [
            Keys(CARD_OK + "#"),
            Keys(EXPIRY),
            Keys(CVV),
            Keys(CARD_DECLINED + "#"),
            Keys(EXPIRY),
            Keys(CVV),
        ]
    )
    call = stack.find_call(agent="1001")
    assert call["ref"] == "REF-1001" and call["merchant"] == "acme"
    assert stack.api("GET", "/v1/calls?ref=REF-1001").json()["call"] == call["call"]
    sse = SseReader(stack, call["call"])
    responses: list[str] = []

    # -- first payment: approved -------------------------------------------------------
    first = start_payment(stack, call["call"], "A1001", callback_url="http://127.0.0.1:9/cb")
    result = sse.wait(lambda e: e["type"] == "payment.result" and e["payment"] == first)
    assert result["result"]["result"] == "approved"
    assert result["result"]["card"] == {"brand": "visa", "last4": "1111"}
    card = field_events(sse, first, "card_number")
    counts = [e["digit_count"] for e in card if e["status"] == "entering"]
    assert counts == list(range(1, 17)), "one progress event per digit keyed"
    assert card[0]["status"] == "waiting"
    assert card[-1]["status"] == "valid" and card[-1]["brand"] == "visa"
    assert card[-1]["digit_count"] == 16
    assert [e["status"] for e in field_events(sse, first, "expiry")][-1] == "valid"
    assert [e["status"] for e in field_events(sse, first, "cvv")][-1] == "valid"
    types = [e["type"] for e in sse.events if e.get("payment") == first]
    assert types.index("payment.processing") < types.index("payment.result")
    payment = stack.api("GET", f"/v1/payments/{first}")
    responses.append(payment.text)
    assert payment.json()["state"] == "done"
    assert payment.json()["result"]["result"] == "approved"

    # What the agent got while the caller keyed: nothing (the digit machine consumed
    # every key), and the keys reached payivr only as digit-action events on its socket.
    assert fake.ear.rfc2833 == [] and fake.ear.inband == []
    assert fake.key_events == len(CARD_OK + "#" + EXPIRY + CVV)
    assert "DTMF" not in fake.events_sent
    # The bridge ran all along: no prompt or field as an application on the caller's
    # leg, only the digit machine's bind and clear; the prompts mixed in.
    assert set(fake.bridged_apps) == {"bind_digit_action", "clear_digit_action"}
    card_prompt = stack.config.services.esl.prompts_dir / "en" / "enter-card-number.wav"
    assert ("displace", str(card_prompt)) in fake.played
    # ... and after the payment, DTMF and audio flow to the agent as before.
    stack.on_loop(fake.offer_to_agent, "5")
    assert fake.ear.rfc2833[-1] == "5" and fake.ear.inband == ["5"]
    assert fake.drop_dtmf is None and not fake.agent_muted
    # The result reached the agent's leg as a SIP INFO with signed headers.
    kind, body, headers = fake.ear.infos[0]
    assert kind == "application/vnd.payivr.result+json"
    assert json.loads(body)["result"] == "approved"
    assert headers["X-Pay-Result"] == "approved" and headers["X-Pay-Card"].endswith("1111")
    assert "X-Pay-Signature" in headers
    assert not [k for k in fake.agent_vars if k.startswith("sip_info_h_")], "INFO headers unset"
    # The callback went to the outbox (the callbacks worker delivers it).
    assert stack.redis.xlen("payivr:outbox") == 1

    # -- second payment on the same call: declined ---------------------------------------
    second = start_payment(stack, call["call"], "A1002")
    result2 = sse.wait(lambda e: e["type"] == "payment.result" and e["payment"] == second)
    assert result2["result"]["result"] == "declined"
    assert result2["result"]["reason"] == "card-declined"
    assert len(fake.ear.infos) == 2
    stack.on_loop(fake.offer_to_agent, "7")
    assert fake.ear.rfc2833[-1] == "7"

    # -- the caller hangs up: the stream ends ------------------------------------------
    stack.on_loop(fake.hang_up_now)
    done.result(10)
    assert sse.ended.wait(5)
    assert sse.events[-1]["type"] == "call.ended"
    assert stack.api("GET", "/v1/calls?agent=1001").status_code == 404
    assert fake.errors == [] and fake.leaks == []

    # No digit anywhere: API responses, every event, the logs, Redis, the wire to
    # FreeSWITCH (what payivr sent), the channel's variables at the end.
    assert_no_card_data(
        "\n".join(sse.raw),
        "\n".join(responses),
        caplog.text,
        stack.redis_dump(),
        fake.received.decode("utf-8", "replace"),
        json.dumps(fake.cdr),
        json.dumps(fake.ear.infos),
    )
    assert not [k for k, v in (fake.cdr or {}).items() if k.startswith("payivr_dtmf_") and v]


def test_agent_restarts_a_field_then_cancels(agent_stack: AgentStack) -> None:
    stack = agent_stack
    fake, done = stack.call(
        [UntilBreak("4111"), Keys(CARD_OK + "#"), UntilBreak("12")], key_delay_s=0.005
    )
    call = stack.find_call()
    sse = SseReader(stack, call["call"])
    payment = start_payment(stack, call["call"], "R2001")
    path = f"/v1/calls/{call['call']}/payments/{payment}"

    sse.wait(lambda e: e.get("field") == "card_number" and e.get("digit_count") == 4)
    # A field that is not open cannot be restarted (the API accepts, the call says no).
    assert stack.api("POST", path + "/restart", body={"field": "cvv"}).status_code == 202
    sse.wait(lambda e: e["type"] == "notice" and e["notice"] == "restart-refused")
    assert stack.api("POST", path + "/restart", body={"field": "card_number"}).status_code == 202
    sse.wait(lambda e: e.get("field") == "card_number" and e.get("status") == "restarted")
    valid = sse.wait(lambda e: e.get("field") == "card_number" and e.get("status") == "valid")
    assert valid["attempt"] == 2  # asked again after the restart

    sse.wait(lambda e: e.get("field") == "expiry" and e.get("digit_count") == 2)
    assert stack.api("POST", path + "/cancel").status_code == 202
    result = sse.wait(lambda e: e["type"] == "payment.result")
    assert result["result"]["result"] == "cancelled"
    assert result["result"]["reason"] == "cancelled-by-agent"
    assert fake.breaks == 2
    # After the payment: nothing masked or muted any more, no payment active.
    assert fake.drop_dtmf is None and not fake.agent_muted
    assert stack.api("GET", f"/v1/calls/{call['call']}").json()["active_payment"] is None
    assert stack.api("POST", path + "/cancel").status_code == 409
    stack.on_loop(fake.hang_up_now)
    done.result(10)
    assert fake.errors == [] and fake.leaks == []
    assert_no_card_data("\n".join(sse.raw), stack.redis_dump())


def test_caller_hangs_up_during_capture(agent_stack: AgentStack) -> None:
    stack = agent_stack
    fake, done = stack.call([HangUp("41")])
    call = stack.find_call()
    sse = SseReader(stack, call["call"])
    payment = start_payment(stack, call["call"], "H3001", callback_url="http://127.0.0.1:9/cb")
    result = sse.wait(lambda e: e["type"] == "payment.result")
    assert result["payment"] == payment
    assert result["result"]["result"] == "cancelled"
    assert result["result"]["reason"] == "caller-hangup"
    done.result(10)
    assert sse.ended.wait(5)
    stored = stack.api("GET", f"/v1/payments/{payment}").json()
    assert stored["result"]["reason"] == "caller-hangup"
    assert stack.redis.xlen("payivr:outbox") == 1
    # FreeSWITCH itself keeps the partial entry on a channel that is gone (transcript
    # e'): the application cannot unset it, hence no CDR module on payivr hosts.
    assert [leak for leak in fake.leaks if "at hang-up" not in leak] == []
    assert fake.errors == []
    assert_no_card_data(stack.redis_dump(), "\n".join(sse.raw))


def test_freeswitch_dying_during_capture_fails_the_payment(agent_stack: AgentStack) -> None:
    stack = agent_stack
    fake, done = stack.call([Drop("41")])
    call = stack.find_call()
    sse = SseReader(stack, call["call"])
    payment = start_payment(stack, call["call"], "D4001", callback_url="http://127.0.0.1:9/cb")
    result = sse.wait(lambda e: e["type"] == "payment.result")
    assert result["payment"] == payment
    # The caller did not hang up: payivr lost the call with its FreeSWITCH.
    assert (result["result"]["result"], result["result"]["reason"]) == (
        "failed",
        "ivr-unavailable",
    )
    done.result(10)
    assert "CHANNEL_HANGUP" not in fake.events_sent
    stored = stack.api("GET", f"/v1/payments/{payment}").json()
    assert stored["result"]["reason"] == "ivr-unavailable"
    assert stack.redis.xlen("payivr:outbox") == 1
    assert fake.errors == [] and fake.leaks == []
    assert_no_card_data(stack.redis_dump(), "\n".join(sse.raw))


def test_api_auth_validation_and_isolation(agent_stack: AgentStack) -> None:
    stack = agent_stack
    _fake, done = stack.call([HangUp()])
    call = stack.find_call()
    cid = call["call"]
    # No token, a wrong token: 401. Another merchant's token: the call does not exist.
    assert stack.api("GET", f"/v1/calls/{cid}", token=None).status_code == 401
    assert stack.api("GET", f"/v1/calls/{cid}", token="x" * 40).status_code == 401
    other = "globex-agent-token-0123456789abcdef"
    assert stack.api("GET", f"/v1/calls/{cid}", token=other).status_code == 404
    assert stack.api("GET", "/v1/calls?agent=1001", token=other).status_code == 404
    assert stack.api("POST", f"/v1/calls/{cid}/payments", token=other, body={}).status_code == 404
    # SPEC 2 validation, reported by JSON field name.
    bad = stack.api(
        "POST", f"/v1/calls/{cid}/payments", body={"operation": "sale", "order": "B1", "amount": 0}
    )
    assert bad.status_code == 400 and bad.json()["field"] == "amount"
    unknown = stack.api(
        "POST", f"/v1/calls/{cid}/payments", body={"operation": "sale", "order": "B1", "pan": "1"}
    )
    assert unknown.status_code == 400 and unknown.json()["field"] == "pan"
    # An agent typing a card number into a free-text field is refused, not stored.
    typed = stack.api(
        "POST",
        f"/v1/calls/{cid}/payments",
        body={"operation": "sale", "order": "B1", "amount": 100, "description": CARD_OK},
    )
    assert typed.status_code == 400 and CARD_OK not in typed.text
    # The same detector as admission: a 12-digit PAN (Maestro range) is card data too.
    typed12 = stack.api(
        "POST",
        f"/v1/calls/{cid}/payments",
        body={"operation": "sale", "order": "B1", "amount": 100, "description": "501800000009"},
    )
    assert typed12.status_code == 400 and typed12.json()["field"] == "description"
    assert stack.api("GET", "/v1/calls").status_code == 400
    assert stack.api("GET", "/openapi.yaml", token=None).status_code == 200
    panel = stack.api("GET", "/panel/", token=None)
    assert (
        panel.status_code == 200
        and "default-src 'none'" in panel.headers["Content-Security-Policy"]
    )
    # One payment at a time on a call.
    first = start_payment(stack, cid, "B2001")
    second = stack.api(
        "POST", f"/v1/calls/{cid}/payments", body={"operation": "sale", "order": "B2", "amount": 5}
    )
    assert second.status_code == 409
    restart = stack.api("POST", f"/v1/calls/{cid}/payments/{first}/restart", body={"field": "pin"})
    assert restart.status_code == 400
    done.result(10)
    assert_no_card_data(stack.redis_dump())


def test_without_live_digit_count_dtmf_is_sensitive_during_capture(
    agent_stack_no_live_count: AgentStack,
) -> None:
    stack = agent_stack_no_live_count
    fake, done = stack.call([Keys(CARD_OK + "#"), Keys(EXPIRY), Keys(CVV)])
    call = stack.find_call()
    sse = SseReader(stack, call["call"], token=ACME_TOKEN)
    start_payment(stack, call["call"], "S4001")
    result = sse.wait(lambda e: e["type"] == "payment.result")
    assert result["result"]["result"] == "approved"
    statuses = {e.get("status") for e in sse.events if e.get("type") == "field"}
    assert "entering" not in statuses and "valid" in statuses
    assert "DTMF" not in fake.events_sent
    assert fake.variables.get("sensitive_dtmf") == "false"  # restored for the agent
    stack.on_loop(fake.offer_to_agent, "9")
    assert fake.ear.rfc2833[-1] == "9"
    stack.on_loop(fake.hang_up_now)
    done.result(10)
    assert fake.errors == [] and fake.leaks == []


@pytest.mark.parametrize("session_merchant", [None, "globex"])
def test_a_call_not_admitted_for_the_merchant_is_refused(
    agent_stack: AgentStack, session_merchant: str | None
) -> None:
    fake, done = agent_stack.call([], session_merchant=session_merchant)
    done.result(10)
    assert fake.returned_to_dialplan, "refused calls go back to the dialplan (exit)"
    assert fake.bridge is None
    assert agent_stack.api("GET", "/v1/calls?agent=1001").status_code == 404


def test_processor_timeout_is_failed_reversed_and_recorded(agent_stack: AgentStack) -> None:
    stack = agent_stack
    timeout_card = "4000000000000259"  # the sandbox waits timeout_s (2 s), then times out
    fake, done = stack.call([Keys(timeout_card + "#"), Keys(EXPIRY), Keys(CVV)])
    call = stack.find_call()
    sse = SseReader(stack, call["call"])
    payment = start_payment(stack, call["call"], "T4001")
    result = sse.wait(lambda e: e["type"] == "payment.result", timeout=15)
    assert (result["result"]["result"], result["result"]["reason"]) == (
        "failed",
        "processor-timeout",
    )
    stored = {
        k.decode(): v.decode() for k, v in stack.redis.hgetall(f"payivr:session:{payment}").items()
    }
    # The sandbox voids what it may have done; that is on the session for operators.
    assert stored["processor_raw_code"] == "payivr:timeout"
    assert (stored["reversal"], stored["reversal_raw_code"]) == ("reversed", "00")
    stack.on_loop(fake.hang_up_now)
    done.result(10)
    for text in (stack.redis_dump(), "\n".join(sse.raw)):
        assert timeout_card not in text and timeout_card[:12] not in text
