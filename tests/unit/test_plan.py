"""The capture plan walked path by path (SPEC section 6)."""

from __future__ import annotations

import pytest

from payivr.core.errors import IllegalTransition
from payivr.core.plan import (
    MAX_FREE_RESTARTS,
    CallerHungUp,
    CapturePlan,
    Collect,
    DigitsEntered,
    Field,
    Finish,
    InputTimeout,
    MaskRecording,
    Play,
    ProcessPayment,
    ReturnCall,
    SayAmount,
    SayDigits,
    State,
    UnmaskRecording,
)
from payivr.core.processor import Operation, ResultCode
from payivr.core.result import Outcome
from payivr.core.secrets import CardDetails, SecretDigits
from tests.unit.plan_support import AMEX, VISA, answer, key, new_plan


def collect(field: Field, prompt: str, lo: int, hi: int) -> Collect:
    return Collect(field, prompt, lo, hi, timeout_ms=15000, digit_timeout_ms=5000)


CARD = collect(Field.CARD_NUMBER, "enter-card-number", 1, 19)
EXPIRY = collect(Field.EXPIRY, "enter-expiry", 1, 4)
CVV = collect(Field.CVV, "enter-cvv", 1, 3)


def prompts(commands: list[object]) -> list[str]:
    return [c.prompt for c in commands if isinstance(c, Play)]


def to_cvv(plan: CapturePlan, pan: str = VISA) -> None:
    plan.start()
    key(plan, pan)
    key(plan, "1228")
    assert plan.state is State.CVV


def to_processing(plan: CapturePlan, pan: str = VISA, cvv: str = "123") -> ProcessPayment:
    to_cvv(plan, pan)
    commands = key(plan, cvv, None)
    assert isinstance(commands[-1], ProcessPayment)
    return commands[-1]


# -- the happy path, command by command --------------------------------------------------


def test_sale_approved_walks_every_step() -> None:
    plan = new_plan()
    assert plan.start() == [
        Play("greeting"),
        Play("amount-intro"),
        SayAmount(1250, "EUR"),
        MaskRecording(),
        CARD,
    ]
    assert plan.state is State.CARD_NUMBER
    pan = SecretDigits(VISA)
    assert plan.handle(DigitsEntered(Field.CARD_NUMBER, pan, "#")) == [EXPIRY]
    assert plan.last_field is not None and plan.last_field.brand == "visa"
    assert key(plan, "1228", None) == [CVV]
    commands = key(plan, "123", None)
    # The processor is asked at once, the caller hears "processing" meanwhile, and the
    # recording stays masked through that prompt (in-band tone tails).
    assert len(commands) == 1
    payment = commands[0]
    assert isinstance(payment, ProcessPayment) and payment.token is None
    assert payment.hold == "processing"
    assert payment.card is not None
    assert (payment.card.brand, payment.card.last4) == ("visa", "1111")
    assert payment.card.pan.reveal() == VISA
    assert plan.state is State.PROCESSING

    done = plan.handle(answer())
    outcome = Outcome(ResultCode.APPROVED, None, "123456", None, "visa", "1111", "00")
    assert done == [
        UnmaskRecording(),
        Finish(outcome),
        Play("result-approved"),
        Play("auth-code-is"),
        SayDigits("123456"),
        Play("goodbye"),
        ReturnCall(),
    ]
    assert plan.state is State.DONE and plan.outcome == outcome
    # The plan wiped the card once the processor answered.
    assert payment.card.wiped and pan.wiped


def test_declined_says_declined_and_no_auth_code() -> None:
    plan = new_plan()
    payment = to_processing(plan)
    done = plan.handle(answer(ResultCode.DECLINED, "insufficient-funds", None))
    assert done[:2] == [
        UnmaskRecording(),
        Finish(
            Outcome(ResultCode.DECLINED, "insufficient-funds", None, None, "visa", "1111", "00")
        ),
    ]
    assert done[2:] == [Play("result-declined"), Play("goodbye"), ReturnCall()]
    assert payment.card is not None and payment.card.wiped


def test_declined_without_reason_gets_card_declined() -> None:
    plan = new_plan()
    to_processing(plan)
    done = plan.handle(answer(ResultCode.DECLINED, None, None))
    assert isinstance(done[1], Finish) and done[1].outcome.reason == "card-declined"


def test_processor_timeout_is_a_failure_said_as_such() -> None:
    plan = new_plan()
    to_processing(plan)
    done = plan.handle(answer(ResultCode.FAILED, "processor-timeout", None))
    assert isinstance(done[1], Finish)
    assert (done[1].outcome.code, done[1].outcome.reason) == (
        ResultCode.FAILED,
        "processor-timeout",
    )
    assert done[2:] == [Play("result-failed"), Play("goodbye"), ReturnCall()]


def test_return_to_a_uri_says_transfer_back() -> None:
    plan = new_plan(return_to="uri")
    to_processing(plan)
    assert plan.handle(answer())[-2:] == [Play("transfer-back"), ReturnCall()]


# -- re-prompts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "prompt"),
    [
        ("41111", "card-too-short"),
        ("4111111111111112", "card-invalid-number"),
        ("411111111111111", "card-wrong-length"),
        ("9111111111111111", "card-not-accepted"),
    ],
)
def test_card_number_reprompts_by_reason(entry: str, prompt: str) -> None:
    plan = new_plan()
    plan.start()
    digits = SecretDigits(entry)
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, digits, "#"))
    assert commands == [Play(prompt), CARD]
    assert plan.state is State.CARD_NUMBER
    assert digits.wiped, "rejected digits are wiped at once"
    assert plan.last_field is not None and not plan.last_field.valid


def test_brand_not_accepted() -> None:
    plan = new_plan(brands=frozenset({"visa", "mastercard"}))
    plan.start()
    assert key(plan, AMEX) == [Play("card-not-accepted"), CARD]
    assert plan.last_field is not None and plan.last_field.reason == "brand-not-accepted"


@pytest.mark.parametrize(
    ("entry", "prompt"),
    [
        ("1326", "expiry-invalid-month"),
        ("0026", "expiry-invalid-month"),
        ("1026", "expiry-expired"),
        ("128", "expiry-invalid"),
        ("1299", "expiry-invalid"),
    ],
)
def test_expiry_reprompts_by_reason(entry: str, prompt: str) -> None:
    plan = new_plan()
    plan.start()
    key(plan, VISA)
    assert key(plan, entry) == [Play(prompt), EXPIRY]


def test_cvv_reprompt_and_amex_four_digits() -> None:
    plan = new_plan()
    to_cvv(plan)
    assert key(plan, "12") == [Play("cvv-invalid"), CVV]
    amex = new_plan()
    amex.start()
    key(amex, AMEX)
    assert key(amex, "1228") == [collect(Field.CVV, "enter-cvv-amex", 1, 4)]
    assert key(amex, "123") == [Play("cvv-invalid"), collect(Field.CVV, "enter-cvv-amex", 1, 4)]
    payment = key(amex, "1234", None)[-1]
    assert isinstance(payment, ProcessPayment) and payment.card is not None
    assert payment.card.cvv is not None and len(payment.card.cvv) == 4


def test_invalid_then_valid_goes_on() -> None:
    plan = new_plan()
    plan.start()
    assert key(plan, "4111111111111112") == [Play("card-invalid-number"), CARD]
    assert key(plan, "4111") == [Play("card-too-short"), CARD]
    assert key(plan, VISA) == [EXPIRY]
    assert key(plan, "0120") == [Play("expiry-expired"), EXPIRY]
    # Attempts are per field: the expiry still has two left after one failure.
    assert key(plan, "1228") == [CVV]
    assert plan.state is State.CVV


def test_timeouts_exhaust_attempts() -> None:
    plan = new_plan()
    plan.start()
    assert plan.handle(InputTimeout(Field.CARD_NUMBER)) == [Play("no-input"), CARD]
    assert plan.handle(InputTimeout(Field.CARD_NUMBER)) == [Play("no-input"), CARD]
    assert plan.handle(InputTimeout(Field.CARD_NUMBER)) == [
        UnmaskRecording(),
        Finish(Outcome(ResultCode.CANCELLED, "attempts-exhausted")),
        Play("attempts-exhausted"),
        Play("goodbye"),
        ReturnCall(),
    ]
    assert plan.state is State.DONE


def test_attempts_come_from_the_merchant_config() -> None:
    plan = new_plan(attempts=1)
    to_cvv(plan)
    commands = key(plan, "1")
    assert commands[0] == UnmaskRecording()
    assert commands[1] == Finish(Outcome(ResultCode.CANCELLED, "attempts-exhausted"))


def test_exhaustion_on_a_later_field_wipes_what_was_kept() -> None:
    plan = new_plan()
    plan.start()
    pan = SecretDigits(VISA)
    plan.handle(DigitsEntered(Field.CARD_NUMBER, pan, "#"))
    for _ in range(3):
        commands = plan.handle(InputTimeout(Field.EXPIRY))
    assert isinstance(commands[1], Finish)
    assert pan.wiped


# -- "*" restarts -------------------------------------------------------------------------


def test_star_restarts_the_field_without_using_an_attempt() -> None:
    plan = new_plan()
    plan.start()
    partial = SecretDigits("4111")
    for _ in range(MAX_FREE_RESTARTS):
        assert plan.handle(DigitsEntered(Field.CARD_NUMBER, partial, "*")) == [
            Play("restart-field"),
            CARD,
        ]
    assert partial.wiped
    # Free restarts used no attempt: two failures are still re-prompted.
    assert key(plan, "4111") == [Play("card-too-short"), CARD]
    assert key(plan, "4111") == [Play("card-too-short"), CARD]
    assert key(plan, VISA) == [EXPIRY]


def test_star_restarts_are_bounded() -> None:
    plan = new_plan()
    plan.start()
    for _ in range(MAX_FREE_RESTARTS):
        key(plan, "4", "*")
    # Beyond the free restarts every "*" costs an attempt, so the loop ends.
    assert key(plan, "4", "*") == [Play("restart-field"), CARD]
    assert key(plan, "", "*") == [Play("restart-field"), CARD]
    commands = key(plan, "", "*")
    assert Finish(Outcome(ResultCode.CANCELLED, "attempts-exhausted")) in commands


def test_star_restart_on_expiry_keeps_the_card_number() -> None:
    plan = new_plan()
    plan.start()
    key(plan, VISA)
    assert key(plan, "12", "*") == [Play("restart-field"), EXPIRY]
    assert key(plan, "1228") == [CVV]


# -- hang-ups -----------------------------------------------------------------------------


@pytest.mark.parametrize("fields_done", [0, 1, 2])
def test_hangup_mid_capture_cancels_silently_and_unmasks(fields_done: int) -> None:
    plan = new_plan()
    plan.start()
    kept = [SecretDigits(VISA), SecretDigits("1228")]
    for index in range(fields_done):
        field = (Field.CARD_NUMBER, Field.EXPIRY)[index]
        plan.handle(DigitsEntered(field, kept[index], "#"))
    commands = plan.handle(CallerHungUp())
    assert commands == [
        UnmaskRecording(),
        Finish(Outcome(ResultCode.CANCELLED, "caller-hangup")),
    ]
    assert plan.state is State.DONE
    assert all(d.wiped for d in kept[:fields_done])


@pytest.mark.parametrize("fields_done", [0, 1, 2])
def test_media_lost_mid_capture_fails_ivr_unavailable(fields_done: int) -> None:
    # FreeSWITCH died under the call (its socket closed with no hang-up): payivr
    # failed the caller, who did not hang up; the entered digits are still wiped.
    plan = new_plan()
    plan.start()
    kept = [SecretDigits(VISA), SecretDigits("1228")]
    for index in range(fields_done):
        field = (Field.CARD_NUMBER, Field.EXPIRY)[index]
        plan.handle(DigitsEntered(field, kept[index], "#"))
    commands = plan.handle(CallerHungUp(media_lost=True))
    assert commands == [UnmaskRecording(), Finish(Outcome(ResultCode.FAILED, "ivr-unavailable"))]
    assert plan.state is State.DONE
    assert all(d.wiped for d in kept[:fields_done])


def test_media_lost_before_start_fails_ivr_unavailable() -> None:
    plan = new_plan()
    assert plan.handle(CallerHungUp(media_lost=True)) == [
        Finish(Outcome(ResultCode.FAILED, "ivr-unavailable"))
    ]


def test_media_lost_mid_processing_still_records_the_processor_answer() -> None:
    plan = new_plan()
    to_processing(plan)
    assert plan.handle(CallerHungUp(media_lost=True)) == []
    assert plan.state is State.PROCESSING_CALLER_GONE
    assert plan.handle(answer())[-1] == Finish(
        Outcome(ResultCode.APPROVED, None, "123456", None, "visa", "1111", "00")
    )


def test_hangup_at_confirmation_has_nothing_to_unmask() -> None:
    plan = new_plan(confirm_card=True)
    to_cvv(plan)
    key(plan, "123")
    assert plan.state is State.CONFIRM
    assert plan.handle(CallerHungUp()) == [Finish(Outcome(ResultCode.CANCELLED, "caller-hangup"))]


def test_hangup_before_start() -> None:
    plan = new_plan()
    assert plan.handle(CallerHungUp()) == [Finish(Outcome(ResultCode.CANCELLED, "caller-hangup"))]


def test_hangup_mid_processing_records_the_processor_answer() -> None:
    plan = new_plan()
    payment = to_processing(plan)
    assert plan.handle(CallerHungUp()) == []
    assert plan.state is State.PROCESSING_CALLER_GONE and plan.finished
    done = plan.handle(answer())
    # Money may have moved: the real answer is recorded, and nothing is said (the
    # plan still closes its mask span; on a gone call the executor skips it).
    assert done == [
        UnmaskRecording(),
        Finish(Outcome(ResultCode.APPROVED, None, "123456", None, "visa", "1111", "00")),
    ]
    assert payment.card is not None and payment.card.wiped
    assert plan.state is State.DONE


def test_hangup_while_the_result_is_said_is_accepted() -> None:
    plan = new_plan()
    to_processing(plan)
    plan.handle(answer())
    assert plan.handle(CallerHungUp()) == []
    assert plan.state is State.DONE


# -- token sale, tokenize ---------------------------------------------------------------


def test_token_sale_charges_the_token_without_capture() -> None:
    plan = new_plan(Operation.TOKEN_SALE, token="tok_abc")
    assert plan.start() == [
        Play("greeting"),
        Play("amount-intro"),
        SayAmount(1250, "EUR"),
        Play("token-sale-intro"),
        ProcessPayment(None, "tok_abc", hold="processing"),
    ]
    done = plan.handle(answer())
    assert done[0] == Finish(Outcome(ResultCode.APPROVED, None, "123456", None, None, None, "00"))


def test_token_sale_with_cvv_when_the_merchant_asks() -> None:
    plan = new_plan(Operation.TOKEN_SALE, token="tok_abc", token_sale_cvv=True)
    start = plan.start()
    assert start[-2:] == [MaskRecording(), collect(Field.CVV, "enter-cvv-token", 1, 4)]
    assert key(plan, "12") == [Play("cvv-invalid"), collect(Field.CVV, "enter-cvv-token", 1, 4)]
    cvv = SecretDigits("1234")
    commands = plan.handle(DigitsEntered(Field.CVV, cvv, "#"))
    assert commands == [ProcessPayment(None, "tok_abc", cvv, hold="processing")]
    assert plan.handle(answer())[0] == UnmaskRecording()
    assert cvv.wiped


def test_tokenize_has_no_amount() -> None:
    plan = new_plan(Operation.TOKENIZE, token="crm-42")
    start = plan.start()
    assert start == [Play("greeting-tokenize"), MaskRecording(), CARD]
    assert not any(isinstance(c, SayAmount) for c in start)
    key(plan, VISA)
    key(plan, "1228")
    commands = key(plan, "123")
    payment = commands[0]
    assert isinstance(payment, ProcessPayment) and payment.token is None
    assert payment.hold == "processing-tokenize"
    done = plan.handle(answer(token="tok_xyz"))
    assert isinstance(done[1], Finish) and done[1].outcome.token == "tok_xyz"
    assert done[2:] == [Play("result-card-registered"), Play("goodbye"), ReturnCall()]


def test_tokenize_declined() -> None:
    plan = new_plan(Operation.TOKENIZE)
    to_processing(plan)
    done = plan.handle(answer(ResultCode.DECLINED, "card-declined", None))
    assert prompts(done) == ["result-card-not-registered", "goodbye"]


def test_sale_tokenize_says_the_card_was_saved() -> None:
    plan = new_plan(Operation.SALE_TOKENIZE, token="crm-42")
    to_processing(plan)
    done = plan.handle(answer(token="tok_xyz"))
    assert prompts(done) == ["result-approved", "auth-code-is", "result-card-saved", "goodbye"]


# -- confirmation, optional CVV ---------------------------------------------------------

CONFIRM = collect(Field.CONFIRM, "confirm-choice", 1, 1)


def test_confirmation_yes() -> None:
    plan = new_plan(confirm_card=True)
    to_cvv(plan)
    assert key(plan, "123", None) == [
        Play("confirm-card-ending"),
        UnmaskRecording(),  # after a prompt: the CVV's last tone has ended
        SayDigits("1111"),
        CONFIRM,
    ]
    assert plan.state is State.CONFIRM
    commands = key(plan, "1", None)
    assert len(commands) == 1 and isinstance(commands[0], ProcessPayment)
    assert commands[0].hold == "processing"


def test_confirmation_invalid_choice_asks_again() -> None:
    plan = new_plan(confirm_card=True)
    to_cvv(plan)
    key(plan, "123")
    assert key(plan, "7", None) == [
        Play("confirm-invalid"),
        Play("confirm-card-ending"),
        SayDigits("1111"),
        CONFIRM,
    ]
    assert plan.handle(InputTimeout(Field.CONFIRM))[0] == Play("no-input")


def test_confirmation_start_again() -> None:
    plan = new_plan(confirm_card=True)
    plan.start()
    first = SecretDigits(VISA)
    plan.handle(DigitsEntered(Field.CARD_NUMBER, first, "#"))
    key(plan, "1228")
    key(plan, "123")
    assert key(plan, "2", None) == [Play("start-again"), MaskRecording(), CARD]
    assert first.wiped
    key(plan, "5555555555554444")
    key(plan, "1228")
    assert key(plan, "123")[2] == SayDigits("4444")
    payment = key(plan, "1", None)[-1]
    assert isinstance(payment, ProcessPayment) and payment.card is not None
    assert payment.card.brand == "mastercard"


def test_confirmation_start_again_is_bounded() -> None:
    plan = new_plan(confirm_card=True)
    plan.start()
    for round_ in range(3):
        key(plan, VISA)
        key(plan, "1228")
        key(plan, "123")
        commands = key(plan, "2", None)
        if round_ < 2:
            assert commands[0] == Play("start-again")
    assert Finish(Outcome(ResultCode.CANCELLED, "attempts-exhausted")) in commands
    assert plan.state is State.DONE


def test_cvv_skip_when_the_merchant_allows_it() -> None:
    plan = new_plan(cvv_optional=True)
    plan.start()
    key(plan, VISA)
    assert key(plan, "1228") == [collect(Field.CVV, "enter-cvv-optional", 0, 3)]
    empty = SecretDigits("")
    commands = plan.handle(DigitsEntered(Field.CVV, empty, "#"))
    assert empty.wiped
    assert plan.last_field is not None and plan.last_field.reason == "skipped"
    payment = commands[-1]
    assert isinstance(payment, ProcessPayment) and payment.card is not None
    assert payment.card.cvv is None


def test_cvv_empty_entry_is_not_a_skip_when_not_allowed() -> None:
    plan = new_plan()
    to_cvv(plan)
    assert key(plan, "", "#") == [Play("cvv-invalid"), CVV]


def test_cvv_optional_still_validates_a_keyed_code() -> None:
    plan = new_plan(cvv_optional=True)
    to_cvv(plan)
    assert key(plan, "12", "#")[0] == Play("cvv-invalid")


# -- illegal transitions ------------------------------------------------------------------


def snapshot(plan: CapturePlan) -> dict[str, object]:
    """Every attribute; secrets by identity and wiped flag (they cannot be copied)."""

    def freeze(value: object) -> object:
        if isinstance(value, SecretDigits | CardDetails):
            return (id(value), value.wiped)
        return value

    return {k: freeze(v) for k, v in vars(plan).items()}


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        ("new", DigitsEntered(Field.CARD_NUMBER, SecretDigits(VISA), "#")),
        ("new", answer()),
        ("card", DigitsEntered(Field.EXPIRY, SecretDigits("1228"), "#")),
        ("card", InputTimeout(Field.CVV)),
        ("card", answer()),
        ("processing", DigitsEntered(Field.CVV, SecretDigits("123"), "#")),
        ("processing", InputTimeout(Field.CVV)),
        ("done", answer()),
        ("done", InputTimeout(Field.CARD_NUMBER)),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(setup: str, event: object) -> None:
    plan = new_plan()
    if setup == "card":
        plan.start()
    elif setup == "processing":
        to_processing(plan)
    elif setup == "done":
        to_processing(plan)
        plan.handle(answer())
    before_state, before = plan.state, snapshot(plan)
    with pytest.raises(IllegalTransition):
        plan.handle(event)  # type: ignore[arg-type]
    assert plan.state is before_state
    assert snapshot(plan) == before
    if isinstance(event, DigitsEntered):
        assert not event.digits.wiped, "an illegal event is not even consumed"


def test_start_twice_is_illegal() -> None:
    plan = new_plan()
    plan.start()
    with pytest.raises(IllegalTransition):
        plan.start()
    assert plan.state is State.CARD_NUMBER
    # And the plan still works after the refused call.
    assert key(plan, VISA) == [EXPIRY]


def test_illegal_transition_message_has_no_digits() -> None:
    plan = new_plan()
    with pytest.raises(IllegalTransition) as info:
        plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(VISA), "#"))
    assert "1111" not in str(info.value)


def test_public_wipe_zeroes_what_the_plan_holds() -> None:
    plan = new_plan()
    plan.start()
    pan, expiry = SecretDigits(VISA), SecretDigits("1228")
    plan.handle(DigitsEntered(Field.CARD_NUMBER, pan, "#"))
    plan.handle(DigitsEntered(Field.EXPIRY, expiry, None))
    plan.wipe()
    assert pan.wiped and expiry.wiped
    plan.wipe()  # idempotent
    payment_plan = new_plan()
    payment = to_processing(payment_plan)
    payment_plan.wipe()
    assert payment.card is not None and payment.card.wiped


# -- the agent's cancel ----------------------------------------------------------------


def test_cancel_requested_ends_silently_and_wipes_what_was_kept() -> None:
    from payivr.core.plan import CancelRequested
    from payivr.core.reasons import Reason

    plan = new_plan()
    plan.start()
    pan, expiry = SecretDigits(VISA), SecretDigits("1228")
    plan.handle(DigitsEntered(Field.CARD_NUMBER, pan, "#"))
    plan.handle(DigitsEntered(Field.EXPIRY, expiry, None))
    commands = plan.handle(CancelRequested(Reason.CANCELLED_BY_AGENT))
    assert commands == [
        UnmaskRecording(),
        Finish(Outcome(ResultCode.CANCELLED, "cancelled-by-agent")),
    ]
    assert pan.wiped and expiry.wiped and plan.state is State.DONE


def test_cancel_is_refused_once_the_processor_has_the_card() -> None:
    from payivr.core.plan import CancelRequested
    from payivr.core.reasons import Reason

    plan = new_plan()
    to_processing(plan)
    with pytest.raises(IllegalTransition):
        plan.handle(CancelRequested(Reason.CANCELLED_BY_AGENT))
    assert plan.state is State.PROCESSING
