"""The order of a payment's last steps (issue 11, items 3 and 5), on the peer.

The processor is asked the moment the last field is valid, while the caller hears
"processing"; the result is stored (session, outbox) before that prompt ends; the
recording stays masked through the prompt and is unmasked after it, never sooner than
the guard after the last entry. The peer holds the "processing" prompt until the
result is in Redis: an executor that asks the processor only after the prompt would
leave it waiting (recorded as `hold-timeout`).
"""

from __future__ import annotations

import asyncio
import time

from payivr.core.plan.commands import UNMASK_GUARD_MS
from payivr.core.processor import ChargeRequest, ProcessorAnswer, ResultCode
from tests.esl.harness import EslHarness
from tests.esl.peer import CallScript, FakeCall, Input, Keys
from tests.esl.test_calls import CVV, EXPIRY, PAN, Stack, assert_no_card_data

RECORDING = "/var/rec/cc-leg.wav"
HOLD_LIMIT_S = 10.0


class TimelineCall(FakeCall):
    """The peer, writing down when each application starts and ends and each API
    command arrives, and what Redis and the recording look like at those points."""

    def __init__(self, script: CallScript, h: EslHarness, session_id: str) -> None:
        super().__init__(script)
        self.h = h
        self.session_id = session_id
        self.timeline: list[tuple[str, str, float]] = []
        self.masked_during_hold: bool | None = None
        self.stored_at_unmask: bool | None = None

    def stored(self) -> bool:
        return bool(self.h.client.hget(f"payivr:session:{self.session_id}", "result"))

    def mark(self, what: str, name: str) -> None:
        self.timeline.append((what, name, time.monotonic()))

    def index(self, what: str, name: str) -> int:
        return next(i for i, (w, n, _) in enumerate(self.timeline) if (w, n) == (what, name))

    def at(self, what: str, name: str) -> float:
        return self.timeline[self.index(what, name)][2]

    async def _run_app(self, app: str, arg: str, event_uuid: str) -> None:
        name = f"{app} {arg.rsplit('/', 1)[-1]}" if app == "playback" else app
        self.mark("start", name)
        if name == "playback processing.wav":
            self.masked_during_hold = self.recordings.get(RECORDING)
            deadline = time.monotonic() + HOLD_LIMIT_S
            while not self.stored():
                if time.monotonic() > deadline:
                    self.mark("hold-timeout", name)
                    break
                await asyncio.sleep(0.01)
        await super()._run_app(app, arg, event_uuid)
        self.mark("end", name)

    def _api(self, command: str) -> str:
        if command.startswith("uuid_record") and " unmask " in command:
            self.stored_at_unmask = self.stored()
            self.mark("api", "unmask")
        return super()._api(command)


class Spy:
    """The sandbox's approval, noting on the peer's timeline when it was asked."""

    def __init__(self) -> None:
        self.call: TimelineCall | None = None

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        if self.call is not None:
            self.call.mark("charge", "processor")
        return ProcessorAnswer(ResultCode.APPROVED, auth_code="123456", raw_code="00")

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        raise AssertionError("no reversal expected")


async def timeline_call(h: EslHarness, inputs: list[Input], spy: Spy) -> TimelineCall:
    session = h.new_session()
    headers = {"X-Pay-Merchant": "acme", "X-Pay-Order": "A1001", "X-Payivr-Session": session.id}
    script = CallScript(sip_headers=headers, inputs=inputs, recordings=(RECORDING,))
    call = TimelineCall(script, h, session.id)
    spy.call = call
    await call.run("127.0.0.1", h.server.port, timeout=30)
    await h.idle()
    return call


def test_processor_asked_and_result_stored_while_processing_plays(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            spy = Spy()
            h.services.processors["acme"] = spy
            call = await timeline_call(h, [Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)], spy)
            names = [(w, n) for w, n, _ in call.timeline]
            assert ("hold-timeout", "playback processing.wav") not in names
            hold_end = call.index("end", "playback processing.wav")
            # Asked with the prompt (not after it); the result was durable before the
            # prompt completed (else hold-timeout above).
            assert call.index("charge", "processor") < hold_end
            last_entry = max(
                i for i, (w, n, _) in enumerate(call.timeline) if n == "play_and_get_digits"
            )
            assert last_entry < call.index("charge", "processor")
            assert call.masked_during_hold is True
            # Unmasked only after the prompt, then the result is said.
            assert hold_end < call.index("api", "unmask")
            assert call.index("api", "unmask") < call.index("start", "playback result-approved.wav")
            assert len(h.outbox()) == 1
            assert (call.bye_headers or {})["X-Pay-Result"] == "approved"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_attempts_exhausted_keeps_the_mask_for_the_guard_but_not_the_result(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            spy = Spy()
            h.services.processors["acme"] = spy
            bad_cvv = [Keys("1#"), Keys("2#"), Keys("3#")]
            call = await timeline_call(h, [Keys(PAN + "#"), Keys(EXPIRY), *bad_cvv], spy)
            last_entry = max(
                t for w, n, t in call.timeline if (w, n) == ("end", "play_and_get_digits")
            )
            # The last CVV key's tone cannot reach the recording: the unmask waits out
            # the guard; the result does not wait for it.
            assert call.at("api", "unmask") - last_entry >= UNMASK_GUARD_MS / 1000
            assert call.stored_at_unmask is True
            assert (call.bye_headers or {})["X-Pay-Reason"] == "attempts-exhausted"
            assert not any(n == "processor" for _, n, _ in call.timeline)
            assert_no_card_data(h, call)

    asyncio.run(scenario())
