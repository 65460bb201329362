from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payivr.core.admission import NO_BODY, Accept, MessageBody, Reject, admit
from payivr.core.config import parse_config
from payivr.core.errors import Rejection
from payivr.core.processor import Operation
from payivr.core.replay import MemoryReplayGuard
from payivr.core.request import REQUEST_HEADERS, collect_headers, parse_request
from tests.unit.helpers import EXAMPLE, NOW, SDP, example_config, example_data, signed_headers

CONFIG = example_config()
ACME = CONFIG.merchants["acme"]


def decide(
    headers,
    *,
    source="127.0.0.1",
    call_id="call-1@cti",
    now=NOW,
    replay=None,
    config=CONFIG,
    referred_by=None,
    body=None,
):  # type: ignore[no-untyped-def]
    return admit(
        headers,
        call_id=call_id,
        source_ip=source,
        config=config,
        now=now,
        body=SDP if body is None else body,
        replay=replay,
        referred_by=referred_by,
    )


def rejection(decision) -> Rejection:  # type: ignore[no-untyped-def]
    assert isinstance(decision, Reject), decision
    return decision.rejection


def test_valid_sale_is_accepted() -> None:
    decision = decide(signed_headers())
    assert isinstance(decision, Accept)
    req = decision.request
    assert (req.merchant, req.operation, req.order, req.amount, req.currency) == (
        "acme",
        Operation.SALE,
        "A1001",
        1250,
        "EUR",
    )
    assert req.return_to.kind == "hangup" and req.language == "en"
    assert decision.replay_key is not None and decision.replay_key.startswith("payivr:replay:acme:")


@pytest.mark.parametrize(
    ("fields", "status", "header", "problem"),
    [
        ({"x_pay_amount": "12.50"}, 400, "X-Pay-Amount", "whole number"),
        ({"x_pay_amount": "-5"}, 400, "X-Pay-Amount", "whole number"),
        ({"x_pay_amount": "0"}, 400, "X-Pay-Amount", "greater than 0"),
        ({"x_pay_amount": "1000001"}, 400, "X-Pay-Amount", "limit"),
        ({"x_pay_amount": None}, 400, "X-Pay-Amount", "missing"),
        ({"x_pay_operation": "refund"}, 400, "X-Pay-Operation", "must be"),
        ({"x_pay_operation": None}, 400, "X-Pay-Operation", "missing"),
        ({"x_pay_order": "A 1"}, 400, "X-Pay-Order", "1-32"),
        ({"x_pay_order": "x" * 33}, 400, "X-Pay-Order", "1-32"),
        ({"x_pay_currency": "JPY"}, 400, "X-Pay-Currency", "not accepted"),
        ({"x_pay_currency": "E1R"}, 400, "X-Pay-Currency", "ISO 4217"),
        ({"x_pay_language": "fr"}, 400, "X-Pay-Language", "es, en, pt, nl"),
        ({"x_pay_description": "x" * 65}, 400, "X-Pay-Description", "64"),
        ({"x_pay_callback_url": "ftp://127.0.0.1/cb"}, 400, "X-Pay-Callback-Url", "https"),
        (
            {"x_pay_callback_url": "https://evil.example.com/cb"},
            400,
            "X-Pay-Callback-Url",
            "allowlist",
        ),
        ({"x_pay_return": "sip:q@evil.example.com"}, 400, "X-Pay-Return", "allowlist"),
        ({"x_pay_return": "voicemail"}, 400, "X-Pay-Return", "hangup, agent"),
        ({"x_pay_return": "agent"}, 400, "X-Pay-Return", "X-Pay-Agent or Referred-By"),
        ({"x_pay_operation": "token_sale"}, 400, "X-Pay-Token", "missing"),
        ({"x_pay_token": "4111111111111111"}, 400, "X-Pay-Token", "card number"),
        ({"x_pay_order": "4111111111111111"}, 400, "X-Pay-Order", "card number"),
        ({"x_pay_order": "ord-4111-1111-1111-1111"}, 400, "X-Pay-Order", "card number"),
        (
            {"x_pay_description": "card 4111 1111 1111 1111"},
            400,
            "X-Pay-Description",
            "card number",
        ),
        ({"x_pay_operation": "tokenize", "x_pay_amount": "100"}, 400, "X-Pay-Amount", "tokenize"),
        ({"x_pay_merchant": "ac me"}, 400, "X-Pay-Merchant", "1-32"),
        ({"x_pay_merchant": "globex"}, 404, "X-Pay-Merchant", "not a known merchant"),
    ],
)
def test_rejections_name_the_header(fields, status, header, problem) -> None:  # type: ignore[no-untyped-def]
    r = rejection(decide(signed_headers(**fields)))
    assert (r.status, r.header) == (status, header)
    assert problem in r.problem
    assert r.warning("pay.example.com").startswith(f'399 pay.example.com "{header}: ')


def test_source_not_allowed_is_403() -> None:
    r = rejection(decide(signed_headers(), source="10.9.9.9"))
    assert (r.status, r.reason_phrase, r.header) == (403, "Forbidden", "source")


@pytest.mark.parametrize(
    ("mutate", "header", "problem"),
    [
        (lambda h: [(k, v) for k, v in h if k != "X-Pay-Signature"], "X-Pay-Signature", "missing"),
        (
            lambda h: [(k, v if k != "X-Pay-Amount" else "1251") for k, v in h],
            "X-Pay-Signature",
            "does not match",
        ),
        (lambda h: [(k, v) for k, v in h if k != "X-Pay-Timestamp"], "X-Pay-Timestamp", "missing"),
    ],
)
def test_signature_problems_are_403(mutate, header, problem) -> None:  # type: ignore[no-untyped-def]
    r = rejection(decide(mutate(signed_headers())))
    assert (r.status, r.header) == (403, header) and problem in r.problem


def test_stale_and_future_timestamps_are_403() -> None:
    for ts in (NOW - 301, NOW + 301):
        r = rejection(decide(signed_headers(ts=ts)))
        assert (r.status, r.header) == (403, "X-Pay-Timestamp")
    assert isinstance(decide(signed_headers(ts=NOW - 300)), Accept)


def test_signature_is_bound_to_the_call_id() -> None:
    r = rejection(decide(signed_headers(call_id="other@cti"), call_id="call-1@cti"))
    assert r.header == "X-Pay-Signature"


def test_replay_is_403_with_a_guard() -> None:
    guard = MemoryReplayGuard()
    assert isinstance(decide(signed_headers(), replay=guard), Accept)
    r = rejection(decide(signed_headers(), replay=guard))
    assert (r.status, r.header) == (403, "X-Pay-Signature") and "replayed" in r.problem


def test_duplicate_header_with_different_values_is_400() -> None:
    headers = [*signed_headers(), ("x-pay-amount", "99")]
    r = rejection(decide(headers))
    assert (r.status, r.header) == (400, "X-Pay-Amount") and "twice" in r.problem
    same_twice = [*signed_headers(), ("X-PAY-AMOUNT", " 1250 ")]
    assert isinstance(decide(same_twice), Accept)


def test_numeric_orders_up_to_11_digits_or_with_a_letter_prefix_are_fine() -> None:
    assert isinstance(decide(signed_headers(x_pay_order="20261203001")), Accept)
    assert isinstance(decide(signed_headers(x_pay_order="A4111111111111112")), Accept)


def test_long_numeric_orders_are_refused_whether_or_not_they_pass_luhn() -> None:
    # One detector, no Luhn (docs/contract-notes.md): predictable for an integrator.
    for order in ("4111111111111112", "202612030001"):
        r = rejection(decide(signed_headers(x_pay_order=order)))
        assert (r.status, r.header) == (400, "X-Pay-Order") and "card number" in r.problem


def test_unknown_x_pay_headers_are_ignored_and_unsigned() -> None:
    assert isinstance(decide([*signed_headers(), ("X-Pay-Colour", "blue")]), Accept)


def test_unsigned_merchant_accepts_without_signature() -> None:
    config = example_config(signing={"required": False})
    headers = [(k, v) for k, v in signed_headers() if k not in ("X-Pay-Signature",)]
    decision = decide(headers, config=config)
    assert isinstance(decision, Accept) and decision.replay_key is None


def test_agent_return_from_header_or_referred_by() -> None:
    d = decide(signed_headers(x_pay_return="agent", x_pay_agent="<sip:7001@127.0.0.1:5070>"))
    assert isinstance(d, Accept) and d.request.return_to.uri == "sip:7001@127.0.0.1:5070"
    d = decide(signed_headers(x_pay_return="agent"), referred_by='"Agent" <sip:7002@localhost>')
    assert isinstance(d, Accept) and d.request.return_to.uri == "sip:7002@localhost"


def test_token_sale_and_tokenize() -> None:
    d = decide(signed_headers(x_pay_operation="token_sale", x_pay_token="tok_abc"))
    assert isinstance(d, Accept) and d.request.token == "tok_abc"
    d = decide(signed_headers(x_pay_operation="tokenize", x_pay_amount=None, x_pay_token="ref-1"))
    assert isinstance(d, Accept) and d.request.amount == 0


def test_redsys_order_rule_rejected_at_admission() -> None:
    data = example_data()
    data["merchants"]["acme"]["processor"] = {
        "type": "redsys",
        "timeout_s": 5,
        "merchant_code": "999008881",
        "terminal": "1",
        "secret_key": "env:REDSYS_KEY",
        "environment": "test",
    }
    # The public Redsys test key: not a secret.
    config = parse_config(
        data, base_dir=EXAMPLE.parent, environ={"REDSYS_KEY": "sq7HjrUOBfKmC576ILgskD5srU870gJ7"}
    )
    r = rejection(decide(signed_headers(x_pay_order="A1001"), config=config))
    assert (r.status, r.header) == (400, "X-Pay-Order")


header_names = st.sampled_from([*REQUEST_HEADERS.values(), "X-Pay-Other", "Via", "x-pay-AMOUNT"])
header_values = st.text(max_size=40) | st.from_regex(r"[0-9]{1,14}", fullmatch=True)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(header_names, header_values), max_size=14))
def test_any_headers_give_a_request_or_a_rejection_naming_a_header(headers) -> None:  # type: ignore[no-untyped-def]
    unsigned = example_config(signing={"required": False})
    decision = decide(headers, config=unsigned)
    if isinstance(decision, Reject):
        r = decision.rejection
        assert r.status in (400, 403, 404)
        assert r.header in REQUEST_HEADERS.values() or r.header == "source"
        assert r.problem
    else:
        assert decision.request.merchant == "acme"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(REQUEST_HEADERS)), st.text(max_size=30)))
def test_parse_request_never_crashes(fields) -> None:  # type: ignore[no-untyped-def]
    try:
        cleaned = collect_headers(fields.items())
        parse_request(cleaned, ACME, call_id="c")
    except Rejection as r:
        assert r.header in REQUEST_HEADERS.values()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (NO_BODY, "late offer"),
        (MessageBody("application/sdp", "\r\n"), "late offer"),
        (MessageBody("text/plain", "hello"), "not an SDP offer"),
        (MessageBody("application/sdp", "v=0\r\ns=-\r\n"), "no media line"),
    ],
)
def test_an_invite_without_an_sdp_offer_is_488_after_authentication(
    body: MessageBody, problem: str
) -> None:
    r = rejection(decide(signed_headers(), body=body))
    assert (r.status, r.reason_phrase, r.header) == (488, "Not Acceptable Here", "SDP")
    assert problem in r.problem
    # Authenticate before explaining: an unsigned late offer learns only about the signature.
    headers = [(k, v) for k, v in signed_headers() if k.lower() != "x-pay-signature"]
    unsigned = rejection(decide(headers, body=NO_BODY))
    assert (unsigned.status, unsigned.header) == (403, "X-Pay-Signature")


def test_a_multipart_body_with_an_sdp_part_is_an_offer() -> None:
    boundary = "b1"
    text = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{SDP.text}"
        f"--{boundary}\r\nContent-Type: application/isup\r\n\r\nxx\r\n--{boundary}--\r\n"
    )
    body = MessageBody(f"multipart/mixed;boundary={boundary}", text)
    assert isinstance(decide(signed_headers(), body=body), Accept)


def test_a_late_offer_does_not_use_up_the_replay_guard() -> None:
    guard = MemoryReplayGuard()
    headers = signed_headers()
    assert isinstance(decide(headers, body=NO_BODY, replay=guard), Reject)
    assert isinstance(decide(headers, replay=guard), Accept)
