"""Whole calls: the ESL application against the fake FreeSWITCH and a real Redis.

After every call, every log line, Redis key/value, outbox entry, event the
application could have kept, and every byte the application sent to FreeSWITCH is
searched for the keyed digits: none may be there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time

import pytest

from payivr.core.config import ReturnSettings
from payivr.core.processor import (
    ChargeRequest,
    Operation,
    ProcessorAnswer,
    ResultCode,
    idempotency_key,
)
from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.sandbox import SandboxProcessor
from payivr.core.signature import verify
from tests.esl.harness import EslHarness
from tests.esl.peer import FakeCall, HangUp, Keys, Silence
from tests.support import pci

PAN = "4111111111111111"
EXPIRY = "1230"  # December 2030
CVV = "737"


class Stack:
    """A started harness inside one event loop, with log capture."""

    def __init__(self, redis_url: str, returns: ReturnSettings | None = None) -> None:
        self.h = EslHarness(redis_url, returns=returns)
        self.logger = logging.getLogger("payivr")
        self.previous_level = self.logger.level

    async def __aenter__(self) -> EslHarness:
        self.logger.addHandler(self.h.log)
        self.logger.setLevel(logging.DEBUG)
        await self.h.start()
        return self.h

    async def __aexit__(self, *exc: object) -> None:
        await self.h.stop()
        self.logger.removeHandler(self.h.log)
        self.logger.setLevel(self.previous_level)


def assert_no_card_data(h: EslHarness, call: FakeCall, *keyed: str) -> None:
    """The PCI search: nothing the application wrote or sent holds keyed digits."""
    sent_to_fs = call.received.decode("utf-8", "replace")
    log_text = "\n".join(h.log.lines)
    redis_text = "\n".join(h.redis_dump())
    outbox_text = json.dumps(h.outbox())
    # Events are never logged: no channel variable name appears in any log line.
    assert "variable_" not in log_text
    for digits in (PAN, *keyed):
        assert digits not in log_text, "card digits in a log line"
        assert digits not in redis_text, "card digits in Redis"
        assert digits not in outbox_text, "card digits in the outbox"
        assert digits not in sent_to_fs, "card digits sent to FreeSWITCH"
    for short in (EXPIRY, CVV):
        assert not pci.find_card_data(log_text, pans=(), short=(short,)), "expiry/CVV in a log"
        for _, fields in h.client.xrange("payivr:events"):
            assert short not in fields.values()
    assert call.leaks == [], call.leaks
    assert call.errors == [], call.errors
    # The CDR (CHANNEL_HANGUP_COMPLETE) carried no digit variable.
    assert call.cdr is not None
    assert not any(k.startswith("payivr_dtmf_") for k in call.cdr), "digits variable in the CDR"
    assert "read_terminator_used" not in call.cdr


def assert_no_error_noise(h: EslHarness) -> None:
    assert not [r for r in h.log.records if r.levelno >= logging.ERROR]
    assert not any("Traceback" in line for line in h.log.lines)


def card(pan: str = PAN) -> list[Keys]:
    return [Keys(pan + "#"), Keys(EXPIRY), Keys(CVV)]


def signed_ok(h: EslHarness, headers: dict[str, str], call_id: str) -> bool:
    secret = h.config.merchants["acme"].signing_secret.encode()
    fields = {k: v for k, v in headers.items() if k.lower().startswith("x-pay-")}
    return verify(secret, fields, call_id, headers["X-Pay-Signature"], SIGNED_RESULT_HEADERS)


def played(call: FakeCall) -> list[str]:
    return [arg.rsplit("/", 1)[-1].removesuffix(".wav") for _, arg in call.played]


# -- outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize("linger_notice_first", [False, True])
def test_approved_sale_ends_with_headers_on_the_bye(
    redis_url: str, linger_notice_first: bool
) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            call = await h.call(
                card(),
                session=session,
                recordings=("/var/rec/cc-leg.wav",),
                linger_notice_first=linger_notice_first,
            )
            stored = h.load(session.id)
            assert stored.result is not None and stored.result.code == "approved"
            assert str(stored.state) == "returned"
            bye = call.bye_headers or {}
            assert bye["X-Pay-Result"] == "approved"
            assert bye["X-Pay-Auth-Code"] == stored.result.auth_code
            assert bye["X-Pay-Card"] == "************1111"
            assert bye["X-Pay-Session"] == session.id
            assert signed_ok(h, bye, call.variables["sip_call_id"])
            assert "X-Pay-Reason" not in bye
            outbox = h.outbox()
            assert len(outbox) == 1
            assert json.loads(outbox[0]["body"])["result"] == "approved"
            prompts = played(call)
            assert prompts[:2] == ["greeting", "amount-intro"]
            assert "currency-eur" in prompts and "result-approved" in prompts
            says = [arg for app, arg in call.played if app == "say"]
            assert "en NUMBER PRONOUNCED 12" in says and "en NUMBER PRONOUNCED 50" in says
            assert f"en NUMBER ITERATED {stored.result.auth_code}" in says
            # Masked before the first digit, unmasked after the last.
            masks = [a for a in call.apis if a.startswith("uuid_record")]
            assert masks == [
                f"uuid_record {call.uuid} mask /var/rec/cc-leg.wav",
                f"uuid_record {call.uuid} unmask /var/rec/cc-leg.wav",
            ]
            assert call.recordings == {"/var/rec/cc-leg.wav": False}
            assert_no_card_data(h, call, EXPIRY + CVV)
            assert_no_error_noise(h)

    asyncio.run(scenario())


def test_declined_card(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            call = await h.call(card("4000000000000002"), session=session)
            assert call.bye_headers is not None
            assert call.bye_headers["X-Pay-Result"] == "declined"
            assert call.bye_headers["X-Pay-Reason"] == "card-declined"
            assert "result-declined" in played(call)
            assert "X-Pay-Auth-Code" not in call.bye_headers
            assert_no_card_data(h, call, "4000000000000002")

    asyncio.run(scenario())


def test_invalid_card_then_valid(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call([Keys("4111111111111112#"), *card()])
            assert "card-invalid-number" in played(call)
            assert call.bye_headers is not None and call.bye_headers["X-Pay-Result"] == "approved"
            assert_no_card_data(h, call, "4111111111111112")
            events = [
                f for _, f in h.client.xrange("payivr:events") if f["event"] == "field.completed"
            ]
            assert [e["valid"] for e in events][:2] == ["false", "true"]

    asyncio.run(scenario())


def test_expired_card_then_valid_expiry(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call([Keys(PAN + "#"), Keys("0120"), Keys(EXPIRY), Keys(CVV)])
            assert "expiry-expired" in played(call)
            assert call.bye_headers is not None and call.bye_headers["X-Pay-Result"] == "approved"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_wrong_cvv_length_then_right(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call([Keys(PAN + "#"), Keys(EXPIRY), Keys("12#"), Keys(CVV)])
            assert "cvv-invalid" in played(call)
            assert call.bye_headers is not None and call.bye_headers["X-Pay-Result"] == "approved"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_no_input_until_attempts_run_out(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            call = await h.call([Silence(), Silence(), Silence()], session=session)
            assert played(call).count("no-input") >= 2
            assert call.bye_headers is not None
            assert call.bye_headers["X-Pay-Result"] == "cancelled"
            assert call.bye_headers["X-Pay-Reason"] == "attempts-exhausted"
            assert h.load(session.id).result.code == "cancelled"  # type: ignore[union-attr]
            assert len(h.outbox()) == 1
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_star_restarts_the_field(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call([Keys("4111*"), *card()])
            assert "restart-field" in played(call)
            assert played(call).count("enter-card-number") == 2
            assert call.bye_headers is not None and call.bye_headers["X-Pay-Result"] == "approved"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


@pytest.mark.parametrize("keys", ["4111", "41", ""])
def test_caller_hangs_up_mid_card(redis_url: str, keys: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            call = await h.call([HangUp(keys)], session=session)
            stored = h.load(session.id)
            assert stored.result is not None
            assert (stored.result.code, stored.result.reason) == ("cancelled", "caller-hangup")
            outbox = h.outbox()
            assert len(outbox) == 1 and json.loads(outbox[0]["body"])["reason"] == "caller-hangup"
            assert call.bye_headers is None  # the caller hung up: no BYE from us
            assert_no_error_noise(h)
            # FreeSWITCH itself put the partial entry into the CDR (transcript e/e'):
            # the application cannot unset a variable on a channel that is gone, which
            # is why the FreeSWITCH role loads no CDR module (docs/esl.md).
            partial = [v for k, v in (call.cdr or {}).items() if k.startswith("payivr_dtmf_")]
            assert partial == ([keys] if keys else [])
            call.cdr = {
                k: v for k, v in (call.cdr or {}).items() if not k.startswith("payivr_dtmf_")
            }
            call.leaks = [leak for leak in call.leaks if "at hang-up" not in leak]
            assert_no_card_data(h, call)
            if len(keys) >= 4:  # shorter runs match port numbers and uuids by chance
                pattern = rf"(?<![0-9a-f]){keys}(?![0-9a-f])"
                assert not re.search(pattern, "\n".join(h.log.lines))

    asyncio.run(scenario())


def test_caller_hangs_up_while_the_result_is_said(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            call = await h.call(card(), session=session, hangup_during=("playback", 6))
            stored = h.load(session.id)
            assert stored.result is not None and stored.result.code == "approved"
            assert len(h.outbox()) == 1
            assert_no_error_noise(h)
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_caller_hangs_up_while_told_to_wait_for_processing(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            # The 4th playback is "processing": the plan has already asked for the
            # payment, so the processor's answer is still recorded (money may move).
            call = await h.call(card(), session=session, hangup_during=("playback", 4))
            assert played(call)[-1] == "processing"
            stored = h.load(session.id)
            assert stored.result is not None and stored.result.code == "approved"
            assert len(h.outbox()) == 1
            assert call.bye_headers is None
            assert_no_error_noise(h)
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_socket_dropped_after_the_payment_was_asked_for(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            # FreeSWITCH's socket dies during the "processing" prompt: the plan already
            # handed over the card, so the payment still runs and its result is kept.
            await h.call(card(), session=session, drop_during=("playback", 4))
            stored = h.load(session.id)
            assert stored.result is not None and stored.result.code == "approved"
            assert len(h.outbox()) == 1
            assert_no_error_noise(h)

    asyncio.run(scenario())


@pytest.mark.parametrize("drop_at", [("play_and_get_digits", 1), ("play_and_get_digits", 3)])
def test_socket_dropped_mid_capture_is_failed_ivr_unavailable(
    redis_url: str, drop_at: tuple[str, int]
) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session()
            # FreeSWITCH dies while a card field is open (kill -9): the socket closes
            # with no CHANNEL_HANGUP and no linger notice. The caller did not hang up:
            # payivr lost the call, so the merchant hears failed/ivr-unavailable.
            call = await h.call(card(), session=session, drop_during=drop_at)
            assert not [e for e in call.events_sent if e == "CHANNEL_HANGUP"]
            stored = h.load(session.id)
            assert stored.result is not None
            assert (stored.result.code, stored.result.reason) == ("failed", "ivr-unavailable")
            (entry,) = h.outbox()
            body = json.loads(entry["body"])
            assert (body["result"], body["reason"]) == ("failed", "ivr-unavailable")
            assert (entry["session_id"], body["session_id"]) == (session.id, session.id)
            assert_no_error_noise(h)
            call.cdr = {}  # a dead FreeSWITCH writes no CDR; the rest of the search holds
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_processor_timeout(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call(card("4000000000000259"))
            assert call.bye_headers is not None
            assert call.bye_headers["X-Pay-Result"] == "failed"
            assert call.bye_headers["X-Pay-Reason"] == "processor-timeout"
            assert "result-failed" in played(call)
            assert_no_card_data(h, call, "4000000000000259")

    asyncio.run(scenario())


class ReverseSpy:
    """The sandbox, with every reverse() call kept; `charge_delay_s` makes it an
    adapter that ignores its timeout and answers `approved` late."""

    def __init__(self, charge_delay_s: float = 0.0) -> None:
        self.inner = SandboxProcessor(b"esl-test-sandbox-token-key-0123456789")
        self.charge_delay_s = charge_delay_s
        self.reversals: list[ChargeRequest] = []

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        if self.charge_delay_s:
            time.sleep(self.charge_delay_s)
        return self.inner.charge(request)

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        self.reversals.append(request)
        return ProcessorAnswer(ResultCode.APPROVED, raw_code="VOIDED")


def session_hash(h: EslHarness, session_id: str) -> dict[str, str]:
    return h.client.hgetall(f"payivr:session:{session_id}")


def test_processor_timeout_is_reversed_and_the_reversal_recorded(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            spy = ReverseSpy()
            h.services.processors["acme"] = spy
            session = h.new_session()
            call = await h.call(card("4000000000000259"), session=session)
            bye = call.bye_headers or {}
            assert (bye["X-Pay-Result"], bye["X-Pay-Reason"]) == ("failed", "processor-timeout")
            assert len(spy.reversals) == 1
            assert spy.reversals[0].idempotency_key == idempotency_key("acme", "A1001")
            stored = session_hash(h, session.id)
            assert stored["processor_raw_code"] == "payivr:timeout"
            assert stored["reversal"] == "reversed"
            assert stored["reversal_raw_code"] == "VOIDED"
            assert h.load(session.id).state.value == "returned"  # the hash is still whole
            assert_no_card_data(h, call, "4000000000000259")

    asyncio.run(scenario())


def test_approved_charge_needs_no_reversal_and_keeps_the_raw_code(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            spy = ReverseSpy()
            h.services.processors["acme"] = spy
            session = h.new_session()
            call = await h.call(card(), session=session)
            assert (call.bye_headers or {})["X-Pay-Result"] == "approved"
            assert spy.reversals == []
            stored = session_hash(h, session.id)
            assert stored["processor_raw_code"] == "00"
            assert "reversal" not in stored

    asyncio.run(scenario())


def test_adapter_ignoring_its_timeout_is_failed_then_voided_late(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            # Budget: 2 x 0.3 s + 1 s grace; this adapter answers "approved" after 2 s.
            spy = ReverseSpy(charge_delay_s=2.0)
            h.services.processors["acme"] = spy
            session = h.new_session()
            call = await h.call(card(), session=session)
            bye = call.bye_headers or {}
            assert (bye["X-Pay-Result"], bye["X-Pay-Reason"]) == ("failed", "processor-timeout")
            assert "X-Pay-Auth-Code" not in bye
            stored = session_hash(h, session.id)
            assert len(spy.reversals) == 1  # the late approval was voided
            assert stored["processor_raw_code"] == "payivr:timeout"
            assert (stored["reversal"], stored["reversal_raw_code"]) == ("reversed", "VOIDED")
            assert h.load(session.id).result.code == "failed"  # type: ignore[union-attr]
            assert_no_card_data(h, call)

    asyncio.run(scenario())


class CvvRecorder(ReverseSpy):
    """Approves, keeping what the security code of each charge was at charge time."""

    def __init__(self) -> None:
        super().__init__()
        self.charges: list[ChargeRequest] = []
        self.cvv_seen: list[str | None] = []

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        self.charges.append(request)
        self.cvv_seen.append(request.cvv.reveal() if request.cvv is not None else None)
        return ProcessorAnswer(ResultCode.APPROVED, auth_code="123456", raw_code="00")


def test_token_sale_cvv_is_sent_to_the_processor_then_wiped(redis_url: str) -> None:
    async def scenario() -> None:
        stack = Stack(redis_url)
        acme = stack.h.config.merchants["acme"]
        acme = dataclasses.replace(
            acme, capture=dataclasses.replace(acme.capture, token_sale_cvv=True)
        )
        stack.h.config = dataclasses.replace(stack.h.config, merchants={"acme": acme})
        async with stack as h:
            recorder = CvvRecorder()
            h.services.processors["acme"] = recorder
            session = h.new_session(operation=Operation.TOKEN_SALE, token="tok_abc")
            call = await h.call([Keys(CVV)], session=session)
            assert (call.bye_headers or {})["X-Pay-Result"] == "approved"
            assert recorder.cvv_seen == [CVV]
            sent = recorder.charges[0]
            assert sent.card is None and sent.token == "tok_abc"
            assert sent.cvv is not None and sent.cvv.wiped
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_unknown_session_gets_an_apology_and_failed(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            call = await h.call([], session_id="no-such-session")
            assert played(call) == ["result-failed", "goodbye"]
            bye = call.bye_headers or {}
            assert bye["X-Pay-Result"] == "failed"
            assert bye["X-Pay-Reason"] == "session-not-found"
            assert signed_ok(h, bye, call.variables["sip_call_id"])
            assert h.outbox() == []
            assert_no_error_noise(h)

    asyncio.run(scenario())


# -- return modes ---------------------------------------------------------------------

INBOUND = ("X-Pay-Merchant", "X-Payivr-Session")  # X-Pay-Order is echoed by the result


def test_return_to_agent_by_refer(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session(return_to=_target("agent"), agent="sip:agent7@127.0.0.1")
            call = await h.call(card(), session=session)
            assert call.refer is not None and call.bridge is None
            target, headers = call.refer
            assert target == "sip:agent7@127.0.0.1"
            assert headers["X-Pay-Result"] == "approved"
            assert not set(INBOUND) & set(headers), "request headers re-sent on the REFER"
            assert signed_ok(h, headers, call.variables["sip_call_id"])
            assert "transfer-back" in played(call)
            assert str(h.load(session.id).state) == "returned"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def test_refused_refer_falls_back_to_a_bridge_through_kamailio(redis_url: str) -> None:
    async def scenario() -> None:
        async with Stack(redis_url) as h:
            session = h.new_session(return_to=_target("uri", "sip:queue@127.0.0.1:25093"))
            call = await h.call(card("4000000000009995"), session=session, refer_ok=False)
            assert call.refer is not None and call.bridge is not None
            dial, headers = call.bridge
            call_id = re.match(r"\{sip_invite_call_id=([^}]+)\}", dial)
            assert call_id is not None
            kamailio = ";fs_path=sip:127.0.0.1:5060"
            assert dial.endswith("sofia/payivr/sip:queue@127.0.0.1:25093" + kamailio)
            assert headers["X-Pay-Result"] == "declined"
            assert headers["X-Pay-Reason"] == "insufficient-funds"
            assert not set(INBOUND) & set(headers)
            assert signed_ok(h, headers, call_id.group(1))
            assert_no_card_data(h, call, "4000000000009995")

    asyncio.run(scenario())


def test_return_by_bridge_when_refer_is_off(redis_url: str) -> None:
    async def scenario() -> None:
        returns = ReturnSettings(use_refer=False, proxy="sip:10.0.0.1:5060")
        async with Stack(redis_url, returns=returns) as h:
            session = h.new_session(return_to=_target("uri", "sip:queue@127.0.0.1"))
            call = await h.call(card(), session=session)
            assert call.refer is None and call.bridge is not None
            dial, headers = call.bridge
            assert dial.endswith("sofia/payivr/sip:queue@127.0.0.1;fs_path=sip:10.0.0.1:5060")
            assert headers["X-Pay-Result"] == "approved" and "X-Pay-Auth-Code" in headers
            assert call.variables["bridge_filter_dtmf"] == "true"
            assert_no_card_data(h, call)

    asyncio.run(scenario())


def _target(kind: str, uri: str | None = None) -> object:
    from payivr.core.request import ReturnTarget

    return ReturnTarget(kind, uri)  # type: ignore[arg-type]
