"""The sandbox processor: SPEC section 8 exactly, and the documented derivations."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payivr.core.processor import (
    ChargeRequest,
    Operation,
    Processor,
    ProcessorTimeout,
    ResultCode,
)
from payivr.core.sandbox import (
    TOKEN_RE,
    SandboxProcessor,
    sandbox_auth_code,
    sandbox_token,
)
from tests.support import builders
from tests.unit.plan_support import TEST_PANS

KEY = b"test-sandbox-token-key-0123456789abcdef"


def charge_request(
    pan: str | None = "4111111111111111",
    *,
    operation: Operation = Operation.SALE,
    order: str = "A1001",
    amount: int = 1250,
    token: str | None = None,
    timeout_s: float = 2.0,
) -> ChargeRequest:
    return builders.charge_request(
        order,
        operation=operation,
        pan=pan,
        expiry="1228",
        card_cvv="123",
        amount=amount,
        token=token,
        timeout_s=timeout_s,
    )


class FakeClock:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_is_a_processor() -> None:
    processor: Processor = SandboxProcessor(KEY)
    assert processor.reverse(charge_request()).code is ResultCode.APPROVED


def test_any_other_luhn_valid_card_is_approved_with_the_documented_code() -> None:
    answer = SandboxProcessor(KEY).charge(charge_request())
    assert answer.code is ResultCode.APPROVED and answer.reason is None
    expected = int(hashlib.sha256(b"A1001:1250").hexdigest(), 16) % 1_000_000
    assert answer.auth_code == f"{expected:06d}"
    assert answer.token is None and answer.raw_code == "00"


def test_auth_code_worked_example() -> None:
    # The value printed in docs/capture-plan.md, recomputed.
    assert sandbox_auth_code("A1001", 1250) == "488659"


def test_auth_code_depends_on_order_and_amount() -> None:
    codes = {sandbox_auth_code(o, a) for o in ("A1", "A2") for a in (100, 101)}
    assert len(codes) == 4
    assert all(len(c) == 6 and c.isdigit() for c in codes)


@pytest.mark.parametrize(
    ("pan", "code", "reason", "raw"),
    [
        ("4000000000000002", ResultCode.DECLINED, "card-declined", "05"),
        ("4000000000009995", ResultCode.DECLINED, "insufficient-funds", "51"),
        ("4000000000000069", ResultCode.DECLINED, "card-expired", "54"),
        ("4000000000000119", ResultCode.FAILED, "processor-error", "96"),
        ("4111111111111112", ResultCode.DECLINED, "invalid-card", "14"),
    ],
)
def test_fixed_cards(pan: str, code: ResultCode, reason: str, raw: str) -> None:
    answer = SandboxProcessor(KEY).charge(charge_request(pan))
    assert (answer.code, answer.reason, answer.raw_code) == (code, reason, raw)
    assert answer.auth_code is None and answer.token is None


def test_timeout_card_waits_the_configured_timeout_then_raises() -> None:
    clock = FakeClock()
    with pytest.raises(ProcessorTimeout) as info:
        SandboxProcessor(KEY, sleep=clock).charge(charge_request("4000000000000259", timeout_s=7.5))
    assert clock.slept == [7.5]
    assert not any(ch.isdigit() for ch in str(info.value))


def test_other_cards_never_sleep() -> None:
    clock = FakeClock()
    SandboxProcessor(KEY, sleep=clock).charge(charge_request())
    assert clock.slept == []


@pytest.mark.parametrize("operation", [Operation.SALE_TOKENIZE, Operation.TOKENIZE])
def test_tokenizing_operations_return_the_documented_token(operation: Operation) -> None:
    answer = SandboxProcessor(KEY).charge(charge_request(operation=operation, amount=0))
    assert answer.code is ResultCode.APPROVED
    message = b"payivr-sandbox-token:acme:4111111111111111"
    digest = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:32]
    letters = "".join("ghijklmnopqrstuv"["0123456789abcdef".index(c)] for c in digest)
    assert answer.token == "tok_" + letters
    assert answer.token is not None and TOKEN_RE.match(answer.token)


def test_tokens_are_per_merchant_and_card() -> None:
    pan = "4111111111111111"
    assert sandbox_token(KEY, "acme", pan) == sandbox_token(KEY, "acme", pan)
    assert sandbox_token(KEY, "acme", pan) != sandbox_token(KEY, "other", pan)
    assert sandbox_token(KEY, "acme", pan) != sandbox_token(KEY, "acme", "5555555555554444")


@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_tokens_contain_no_digit_at_all(pan: str) -> None:
    token = sandbox_token(KEY, "acme", pan)
    assert not any(ch.isdigit() for ch in token)
    assert TOKEN_RE.match(token)


def test_declined_cards_get_no_token() -> None:
    answer = SandboxProcessor(KEY).charge(
        charge_request("4000000000000002", operation=Operation.TOKENIZE, amount=0)
    )
    assert answer.code is ResultCode.DECLINED and answer.token is None


def test_token_sale_with_a_sandbox_token_is_approved() -> None:
    token = sandbox_token(KEY, "acme", "4111111111111111")
    answer = SandboxProcessor(KEY).charge(
        charge_request(None, operation=Operation.TOKEN_SALE, token=token, order="B7")
    )
    assert answer.code is ResultCode.APPROVED
    assert answer.auth_code == sandbox_auth_code("B7", 1250)


@pytest.mark.parametrize(
    "token", [None, "", "tok_", "tok_abc", "4111111111111111", "tok_" + "g" * 31]
)
def test_token_sale_with_an_unknown_looking_token_is_declined(token: str | None) -> None:
    answer = SandboxProcessor(KEY).charge(
        charge_request(None, operation=Operation.TOKEN_SALE, token=token)
    )
    assert (answer.code, answer.reason) == (ResultCode.DECLINED, "invalid-card")


def test_answers_never_carry_the_card_number() -> None:
    processor = SandboxProcessor(KEY, sleep=FakeClock())
    for pan in TEST_PANS:
        for operation in (Operation.SALE, Operation.SALE_TOKENIZE):
            try:
                text = repr(processor.charge(charge_request(pan, operation=operation)))
            except ProcessorTimeout as exc:
                text = repr(exc)
            assert pan not in text and pan[-8:] not in text


def test_the_same_card_under_another_deployment_key_gets_another_token() -> None:
    pan = "4111111111111111"
    other = b"another-deployment-key-0123456789abcdef"
    assert sandbox_token(KEY, "acme", pan) != sandbox_token(other, "acme", pan)
    answers = [
        SandboxProcessor(key).charge(charge_request(pan, operation=Operation.TOKENIZE, amount=0))
        for key in (KEY, other)
    ]
    assert answers[0].token != answers[1].token


def test_without_the_key_a_token_cannot_be_matched_to_its_card() -> None:
    # What an attacker holding a token (from Redis, a header or a callback) would do
    # against an unkeyed hash: hash every candidate card number and compare. The
    # unkeyed construction the sandbox used to have is found at once; the keyed one
    # is not, though the attacker knows merchant, IIN, last four and Luhn digit.
    pan = "4111111111111111"
    token = sandbox_token(KEY, "acme", pan)
    candidates = [f"411111{middle:06d}1111" for middle in range(0, 1_000_000, 97)] + [pan]

    def unkeyed(candidate: str) -> str:
        digest = hashlib.sha256(f"payivr-sandbox-token:acme:{candidate}".encode()).hexdigest()
        return "tok_" + digest[:32].translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv"))

    assert unkeyed(pan) in {unkeyed(c) for c in candidates}  # the old weakness, shown
    assert token not in {unkeyed(c) for c in candidates}
    guessed_key = b"\0" * 32
    assert token not in {sandbox_token(guessed_key, "acme", c) for c in candidates}


def test_a_short_token_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SandboxProcessor(b"short")
