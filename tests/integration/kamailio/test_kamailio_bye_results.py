"""Kamailio finalises on the BYE it relays when the ESL application is gone (SPEC 7).

A SIPp "FreeSWITCH" hangs up the way the dialplan fallback does (unsigned X-Pay-*
headers naming the session); the contact center must receive the session's full
result, signed, and Redis must hold that result with one outbox entry and one
`payment.result` event. A result recorded before the BYE wins over the fallback's.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from payivr.core.processor import ResultCode
from payivr.core.result import SIGNED_RESULT_HEADERS, Outcome, build_result
from payivr.core.session import SessionState, new_event_id
from payivr.core.signature import verify
from payivr.store import keys
from payivr.store.redis_store import RedisSessionStore
from tests.integration.kamailio.conftest import Stack, stack_running
from tests.integration.kamailio.kamsupport import (
    SECRETS,
    SippResult,
    call_id,
    new_prefix,
    signed_sale,
    traced_request_headers,
)

pytestmark = pytest.mark.integration
CALLBACK = "http://127.0.0.1:9/pay-callback"
UAC = "uac-sale-expect-signed-result-on-bye"
FALLBACK_UAS = "uas-freeswitch-sends-fallback-bye"


def place_call(stack: Stack, tmp_path: Path, prefix: str) -> tuple[SippResult, dict[str, str]]:
    """One signed sale through Kamailio; returns SIPp's outcome and the BYE's headers."""
    trace = tmp_path / f"{prefix}.messages"
    result = stack.uac(
        UAC,
        [signed_sale(call_id(prefix), **{"X-Pay-Callback-Url": CALLBACK})],
        prefix,
        extra=("-trace_msg", "-message_file", str(trace)),
    )
    text = trace.read_text(errors="replace") if trace.exists() else ""
    return result, traced_request_headers(text, "BYE")


def assert_signed(bye: dict[str, str], cid: str) -> None:
    pay = {name: value for name, value in bye.items() if name.startswith("x-pay-")}
    assert verify(
        SECRETS["acme_signing"].encode(),
        pay,
        cid,
        pay["x-pay-signature"],
        SIGNED_RESULT_HEADERS,
    ), pay


def outbox(client: redis.Redis) -> list[dict[str, str]]:
    return [fields for _id, fields in client.xrange(keys.OUTBOX)]


def results(client: redis.Redis) -> list[dict[str, str]]:
    return [f for _id, f in client.xrange(keys.EVENTS) if f["event"] == "payment.result"]


def test_the_fallback_bye_reaches_the_contact_center_with_the_full_signed_result(
    tmp_path: Path, redis_url: str
) -> None:
    with stack_running(
        tmp_path, redis_url, uas_scenario=FALLBACK_UAS, uas_extra=("-d", "100")
    ) as stack:
        prefix = new_prefix()
        result, bye = place_call(stack, tmp_path, prefix)
        assert result.returncode == 0, result.explain()
        assert stack.uas is not None
        session_id = stack.uas.wait_for_calls(1)[call_id(prefix)]

        assert_signed(bye, call_id(prefix))
        assert bye["x-pay-result"] == "failed" and bye["x-pay-reason"] == "ivr-unavailable"
        assert bye["x-pay-session"] == session_id and bye["x-pay-order"] == "A1001"
        assert (bye["x-pay-amount"], bye["x-pay-currency"]) == ("1250", "EUR")
        assert abs(int(bye["x-pay-timestamp"]) - time.time()) < 30

        session = RedisSessionStore(stack.redis).load(session_id)
        assert session is not None and session.state is SessionState.DONE
        assert session.result is not None and session.result.reason == "ivr-unavailable"
        (entry,) = outbox(stack.redis)
        assert entry["session_id"] == session_id and entry["url"] == CALLBACK
        assert entry["event_id"] == session.result.event_id
        assert _body(entry)["reason"] == "ivr-unavailable"
        (event,) = results(stack.redis)
        assert event["session"] == session_id and event["reason"] == "ivr-unavailable"
        assert stack.redis.zcard(keys.INFLIGHT) == 0


def test_a_result_recorded_before_the_fallback_bye_is_the_one_relayed_signed(
    tmp_path: Path, redis_url: str
) -> None:
    # The UAS waits 1.5 s between the ACK and its BYE: time to record a result first,
    # as an ESL application does when it dies after recording but before hanging up.
    with stack_running(
        tmp_path, redis_url, uas_scenario=FALLBACK_UAS, uas_extra=("-d", "1500")
    ) as stack:
        prefix = new_prefix()
        outcome: dict[str, object] = {}

        def call() -> None:
            outcome["sipp"], outcome["bye"] = place_call(stack, tmp_path, prefix)

        caller = threading.Thread(target=call)
        caller.start()
        assert stack.uas is not None
        session_id = stack.uas.wait_for_calls(1)[call_id(prefix)]
        store = RedisSessionStore(stack.redis)
        session = store.load(session_id)
        assert session is not None
        approved = build_result(
            session.request,
            session_id=session.id,
            event_id=new_event_id(),
            created_at=session.created_at,
            completed_at=datetime.now(UTC),
            outcome=Outcome(
                ResultCode.APPROVED, auth_code="A1B2C3", card_brand="visa", card_last4="1111"
            ),
        )
        store.record_result(session, approved, datetime.now(UTC))
        caller.join(30)

        sipp = outcome["sipp"]
        assert isinstance(sipp, SippResult) and sipp.returncode == 0, sipp
        bye = outcome["bye"]
        assert isinstance(bye, dict)
        assert_signed(bye, call_id(prefix))
        assert bye["x-pay-result"] == "approved" and "x-pay-reason" not in bye
        assert bye["x-pay-auth-code"] == "A1B2C3" and bye["x-pay-card"].endswith("1111")
        assert [e["event_id"] for e in outbox(stack.redis)] == [approved.event_id]
        assert len(results(stack.redis)) == 1
        kept = store.load(session_id)
        assert kept is not None and kept.result == approved


def _body(entry: dict[str, str]) -> dict[str, object]:
    import json

    body: dict[str, object] = json.loads(entry["body"])
    return body


def test_a_fallback_bye_for_a_session_at_the_processor_queues_its_reversal(
    tmp_path: Path, redis_url: str
) -> None:
    with stack_running(
        tmp_path, redis_url, uas_scenario=FALLBACK_UAS, uas_extra=("-d", "1500")
    ) as stack:
        prefix = new_prefix()
        outcome: dict[str, object] = {}

        def call() -> None:
            outcome["sipp"], outcome["bye"] = place_call(stack, tmp_path, prefix)

        caller = threading.Thread(target=call)
        caller.start()
        assert stack.uas is not None
        session_id = stack.uas.wait_for_calls(1)[call_id(prefix)]
        store = RedisSessionStore(stack.redis)
        session = store.load(session_id)
        assert session is not None
        # The ESL application had asked the processor, then died.
        store.set_state(session, SessionState.PROCESSING, datetime.now(UTC))
        caller.join(30)

        bye = outcome["bye"]
        assert isinstance(bye, dict)
        assert_signed(bye, call_id(prefix))
        assert (bye["x-pay-result"], bye["x-pay-reason"]) == ("failed", "ivr-unavailable")
        assert stack.redis.zrange(keys.REVERSALS, 0, -1) == [session_id]
        assert stack.redis.zcard(keys.INFLIGHT) == 0
        assert len(outbox(stack.redis)) == 1
