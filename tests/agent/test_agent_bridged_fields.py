"""Agent mode's fields on the running bridge, against the transcript peer: what is
sent to FreeSWITCH (no playback or play_and_get_digits on the caller's leg), the
first-key and inter-key timeouts and the caller's hang-up in a field, all applied by
payivr.agent.bridged from the digit machine's events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from payivr.core.config import parse_config
from tests.agent.harness import AgentStack, SseReader
from tests.agent.test_agent_calls import assert_no_card_data, start_payment
from tests.esl.peer import HangUp, Keys, Silence

FIELD_TIMEOUT_MS, DIGIT_TIMEOUT_MS = 400, 300


def short_timeouts_stack(tmp: Path, redis_url: str) -> AgentStack:
    stack = AgentStack(tmp, redis_url, live_digit_count=True)
    data: Any = stack.config.raw
    capture = data["merchants"]["acme"]["capture"]
    capture["field_timeout_ms"], capture["digit_timeout_ms"] = FIELD_TIMEOUT_MS, DIGIT_TIMEOUT_MS
    stack.config = parse_config(data, base_dir=tmp, path=tmp / "payivr.yaml")
    return stack.start()


def test_timeouts_and_a_hang_up_in_a_field(tmp_path: Path, redis_url: str) -> None:
    stack = short_timeouts_stack(tmp_path, redis_url)
    try:
        # The card field: nothing (first-key timeout), then four digits and nothing
        # more (inter-key timeout: too short), then the caller hangs up in the field.
        fake, done = stack.call([Silence(), Keys("4111"), HangUp()])
        call = stack.find_call()
        sse = SseReader(stack, call["call"])
        started = time.monotonic()
        start_payment(stack, call["call"], "B9001")
        result = sse.wait(lambda e: e["type"] == "payment.result", 15)
        elapsed = time.monotonic() - started
        assert result["result"]["reason"] == "caller-hangup"
        card = [e for e in sse.events if e.get("field") == "card_number"]
        reasons = [e.get("reason") for e in card if e["status"] == "invalid"]
        assert reasons == ["no-input", "too-short"], card
        assert [e["digit_count"] for e in card if e["status"] == "entering"] == [1, 2, 3, 4]
        # Two timeouts and the prompts, not the example's 15 s and 5 s.
        assert elapsed < 5.0
        done.result(10)
        # Nothing ran on the bridged caller's leg but the digit machine's bind (the
        # payment's start); the hang-up came before its clear.
        assert fake.bridged_apps == ["bind_digit_action"]
        wire = fake.received.decode("utf-8", "replace")
        assert "play_and_get_digits" not in wire and "playback" not in wire
        assert wire.count(f"uuid_setvar {fake.uuid} payivr_field card_number") == 3
        assert fake.errors == [] and fake.leaks == []
        assert_no_card_data(stack.redis_dump(), "\n".join(sse.raw))
    finally:
        stack.close()


def test_keys_go_only_to_payivr_and_the_channel_keeps_none(tmp_path: Path, redis_url: str) -> None:
    stack = short_timeouts_stack(tmp_path, redis_url)
    try:
        fake, done = stack.call([Keys("4111111111111111#"), Keys("1230"), Keys("123")])
        call = stack.find_call()
        sse = SseReader(stack, call["call"])
        start_payment(stack, call["call"], "B9002")
        result = sse.wait(lambda e: e["type"] == "payment.result", 15)
        assert result["result"]["result"] == "approved"
        # Each key was one digit-action event to this socket, none a DTMF event; the
        # digit the digit action leaves on the channel is removed after each key.
        assert fake.key_events == 24 and "DTMF" not in fake.events_sent
        assert "last_matching_digits" not in fake.variables
        assert fake.ear.rfc2833 == [] and fake.ear.inband == []
        assert not fake.digit_machine and fake.variables.get("sensitive_dtmf") == "false"
        stack.on_loop(fake.hang_up_now)
        done.result(10)
        assert fake.errors == [] and fake.leaks == []
    finally:
        stack.close()


def test_a_digit_action_event_carries_its_key_only_as_secret_digits() -> None:
    """The plain event FreeSWITCH 1.10.12 queues per match (no Event-Name), and the
    variable the match leaves on the channel, as the codec parses them."""
    from payivr.agent.keys import key_from_message
    from payivr.esl.codec import StreamParser

    body = b"payivr_key: 1\ndigits: 7\n\n"
    wire = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body
    (message,) = StreamParser().feed(wire)
    assert "digits" not in (message.event or {}) and "7" not in repr(message)
    key = key_from_message(message)
    assert key is not None and key.is_digits() and len(key) == 1 and message.secrets == {}
    key.wipe()
    other = b"Event-Name: CHANNEL_EXECUTE\nvariable_last_matching_digits: 7\n\n"
    wire = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(other) + other
    (event,) = StreamParser().feed(wire)
    assert key_from_message(event) is None
    assert "variable_last_matching_digits" not in (event.event or {})
    assert list(event.secrets) == ["variable_last_matching_digits"]
    event.wipe_secrets()
