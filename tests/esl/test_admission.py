"""Admission: a call beyond `services.esl.max_calls` is returned at once, never dropped.

The ESL application against the fake FreeSWITCH and a real Redis, with room for one
call: a second call arriving while the first is in progress hears no prompt, gets
`failed`/`ivr-busy` signed on its BYE, and its session holds that result (so its one
callback goes out); the first call is not disturbed.
"""

from __future__ import annotations

import asyncio
import dataclasses

from payivr.core.config import Config
from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.session import Session, SessionState
from payivr.core.signature import verify
from tests.esl import harness
from tests.esl.harness import EslHarness
from tests.esl.peer import CallScript, FakeCall, Keys, run_call

PAN, EXPIRY, CVV = "4111111111111111", "1230", "737"


def room_for_one_call() -> Config:
    config = harness.test_config()
    esl = dataclasses.replace(config.services.esl, max_calls=1)
    return dataclasses.replace(config, services=dataclasses.replace(config.services, esl=esl))


def script(session: Session, **extra: object) -> CallScript:
    headers = {"X-Pay-Merchant": "acme", "X-Pay-Order": session.request.order,
               "X-Payivr-Session": session.id}  # fmt: skip
    return CallScript(sip_headers=headers, **extra)  # type: ignore[arg-type]


def signed_ok(h: EslHarness, call: FakeCall) -> bool:
    headers = call.bye_headers or {}
    secret = h.config.merchants["acme"].signing_secret.encode()
    fields = {k: v for k, v in headers.items() if k.lower().startswith("x-pay-")}
    return verify(secret, fields, call.variables["sip_call_id"], headers["X-Pay-Signature"],
                  SIGNED_RESULT_HEADERS)  # fmt: skip


def test_a_call_beyond_max_calls_is_returned_at_once_as_ivr_busy(redis_url: str) -> None:
    async def scenario() -> None:
        h = EslHarness(redis_url, config=room_for_one_call())
        await h.start()
        try:
            assert h.service is not None
            first_session = h.new_session(order="A1001")
            busy_session = h.new_session(order="A1002")
            inputs = [Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)]
            first = asyncio.create_task(
                run_call(script(first_session, inputs=inputs, app_delay_s=0.2), h.server.port)
            )
            for _ in range(1000):  # until the first call is admitted (bounded, no timing)
                if h.service.app.active:
                    break
                await asyncio.sleep(0.01)
            assert h.service.app.active == 1
            busy = await run_call(script(busy_session), h.server.port)
            first_call = await first
            await h.idle()

            assert busy.played == [], "a refused call hears no prompt"
            assert busy.errors == [] and busy.leaks == []
            bye = busy.bye_headers or {}
            assert bye["X-Pay-Result"] == "failed"
            assert bye["X-Pay-Reason"] == "ivr-busy"
            assert bye["X-Pay-Session"] == busy_session.id
            assert signed_ok(h, busy)
            stored = h.load(busy_session.id)
            assert stored.state is SessionState.RETURNED
            assert stored.result is not None and stored.result.reason == "ivr-busy"

            assert (first_call.bye_headers or {})["X-Pay-Result"] == "approved"
            assert signed_ok(h, first_call)
            # One callback per session, the refused one included.
            sessions = sorted(entry["session_id"] for entry in h.outbox())
            assert sessions == sorted([first_session.id, busy_session.id])
            assert h.server.stats.failed == 0
        finally:
            await h.stop()

    asyncio.run(scenario())
