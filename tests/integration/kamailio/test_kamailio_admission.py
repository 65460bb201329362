"""Kamailio admits only valid, signed payment calls (SPEC 2-5), with real SIPp and Redis.

Each rejection scenario of tests/sipp checks the status, the Warning (and Retry-After
for 503) itself; the tests here check what must not happen: no session, no event, no
INVITE at the FreeSWITCH stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from payivr.core.replay import replay_key
from tests.integration.kamailio.conftest import Stack
from tests.integration.kamailio.kamsupport import (
    SECRETS,
    Call,
    call_id,
    new_prefix,
    sale_fields,
    signed,
    signed_sale,
)

pytestmark = pytest.mark.integration

CARD_DIGITS = ("4111111111111111", "4000000000000002")


def assert_nothing_created(stack: Stack, cid: str) -> None:
    assert stack.session_keys() == []
    assert stack.events() == []
    assert stack.uas is not None
    assert cid not in stack.uas.sessions(), "a rejected INVITE reached FreeSWITCH"


def test_signed_sale_is_relayed_with_a_session(stack: Stack) -> None:
    prefix = new_prefix()
    cid = call_id(prefix)
    forged = "X-Payivr-Session: AAAAAAAAAAAAAAAAAAAAAA"  # a trunk must not choose the session
    call = signed_sale(cid)
    call.lines += ["X-Pay-Unknown: dropped-before-freeswitch", forged]

    result = stack.uac("uac-sale-expect-relayed", [call], prefix)

    assert result.returncode == 0, result.explain()
    assert stack.uas is not None
    session_id = stack.uas.wait_for_calls(1).get(cid)
    assert session_id and session_id != "AAAAAAAAAAAAAAAAAAAAAA"
    stored = stack.redis.hgetall(f"payivr:session:{session_id}")
    assert stored["state"] == "created"
    assert (stored["merchant"], stored["order"], stored["amount"]) == ("acme", "A1001", "1250")
    assert stored["call_id"] == cid
    assert 0 < stack.redis.ttl(f"payivr:session:{session_id}") <= 600
    (event,) = stack.events()
    assert event["event"] == "session.created" and event["session"] == session_id
    signature = dict(line.split(": ", 1) for line in call.lines)["X-Pay-Signature"]
    assert stack.redis.exists(replay_key("acme", cid, signature))


# Each row: scenario, and how to build the offending INVITE's headers for a Call-ID.
REJECTIONS: dict[str, Callable[[str], Call]] = {
    "uac-bad-amount-expect-400": lambda cid: signed_sale(cid, **{"X-Pay-Amount": "12.50"}),
    "uac-missing-order-expect-400": lambda cid: signed_sale(cid, **{"X-Pay-Order": None}),
    "uac-duplicate-header-expect-400": lambda cid: Call(
        [*signed_sale(cid).lines, "X-Pay-Amount: 99999"]
    ),
    "uac-foreign-source-expect-403": lambda cid: Call.of(
        signed(sale_fields(**{"X-Pay-Merchant": "beta"}), cid, SECRETS["beta_signing"])
    ),
    "uac-unsigned-expect-403": lambda cid: Call.of(sale_fields()),
    "uac-bad-signature-expect-403": lambda cid: Call.of(
        {**signed(sale_fields(), cid), "X-Pay-Amount": "125000"}  # changed after signing
    ),
    "uac-stale-timestamp-expect-403": lambda cid: signed_sale(
        cid, **{"X-Pay-Timestamp": str(int(time.time()) - 3600)}
    ),
    "uac-unknown-merchant-expect-404": lambda cid: signed_sale(cid, **{"X-Pay-Merchant": "nobody"}),
}


@pytest.mark.parametrize("scenario", sorted(REJECTIONS))
def test_rejection_answers_with_warning_and_creates_nothing(stack: Stack, scenario: str) -> None:
    prefix = new_prefix()
    cid = call_id(prefix)

    result = stack.uac(scenario, [REJECTIONS[scenario](cid)], prefix)

    assert result.returncode == 0, result.explain()
    assert "warning=" in result.log, "the scenario logs the Warning it checked"
    time.sleep(0.2)  # anything wrongly relayed would have reached the UAS by now
    assert_nothing_created(stack, cid)


def test_late_offer_is_refused_at_admission_before_any_session(stack: Stack) -> None:
    # A signed, otherwise valid INVITE without SDP: 488 with a Warning naming SDP (the
    # scenario checks both), and nothing in Redis: no session, no event, no replay key.
    prefix = new_prefix()
    cid = call_id(prefix)
    call = signed_sale(cid)

    result = stack.uac("uac-late-offer-expect-488", [call], prefix)

    assert result.returncode == 0, result.explain()
    assert "status=488 warning=" in result.log and "late offer" in result.log
    time.sleep(0.2)
    assert_nothing_created(stack, cid)
    assert stack.redis.dbsize() == 0, sorted(stack.redis.scan_iter("*"))


def test_replayed_signature_is_refused(stack: Stack) -> None:
    prefix = new_prefix()
    cid = call_id(prefix)
    call = signed_sale(cid)

    first = stack.uac("uac-sale-expect-relayed", [call], prefix)
    again = stack.uac("uac-replayed-signature-expect-403", [call], prefix)

    assert first.returncode == 0, first.explain()
    assert again.returncode == 0, again.explain()
    assert len(stack.session_keys()) == 1
    assert [e["event"] for e in stack.events()] == ["session.created"]


def test_many_calls_each_get_their_own_session(stack: Stack) -> None:
    prefix = new_prefix()
    calls = [signed_sale(call_id(prefix, n), **{"X-Pay-Order": f"B{n:04d}"}) for n in (1, 2, 3)]

    result = stack.uac("uac-sale-expect-relayed", calls, prefix, rate=50)

    assert result.returncode == 0, result.explain()
    assert stack.uas is not None
    seen = stack.uas.wait_for_calls(3)
    ids = {seen[call_id(prefix, n)] for n in (1, 2, 3)}
    assert len(ids) == 3
    assert {stack.redis.hget(f"payivr:session:{i}", "order") for i in ids} == {
        "B0001",
        "B0002",
        "B0003",
    }


def test_no_card_data_in_redis_warning_or_kamailio_log(stack: Stack) -> None:
    # A CTI that (wrongly) puts a card number in a payment header is refused, and the
    # digits appear nowhere: not in the Warning, not in Redis, not in Kamailio's log.
    prefix = new_prefix()
    token = signed_sale(call_id(prefix), **{"X-Pay-Token": CARD_DIGITS[0]})
    in_token = stack.uac("uac-card-number-in-token-expect-400", [token], prefix)
    prefix = new_prefix()
    merchant = signed_sale(call_id(prefix), **{"X-Pay-Merchant": CARD_DIGITS[1]})
    as_merchant = stack.uac("uac-unknown-merchant-expect-404", [merchant], prefix)

    assert in_token.returncode == 0, in_token.explain()
    assert as_merchant.returncode == 0, as_merchant.explain()
    time.sleep(0.2)
    dump = " ".join(str(stack.redis.dump(k)) for k in stack.redis.scan_iter("*"))
    for digits in CARD_DIGITS:
        assert digits not in dump
        assert digits not in stack.kamailio.log_text()
        assert digits not in in_token.log + as_merchant.log  # the Warnings SIPp received
    assert "X-Pay-Merchant: " in as_merchant.log
    assert stack.session_keys() == []


def test_scenarios_check_the_warning_they_name(stack: Stack) -> None:
    """Guard on the guards: a 400 naming another header fails the amount scenario."""
    prefix = new_prefix()
    call = signed_sale(call_id(prefix), **{"X-Pay-Order": None})

    result = stack.uac("uac-bad-amount-expect-400", [call], prefix, timeout_s=5)

    assert result.returncode != 0
