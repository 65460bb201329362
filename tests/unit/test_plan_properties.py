"""Invariants of the capture plan over random event sequences, and repr safety."""

from __future__ import annotations

import dataclasses

from hypothesis import event, given, settings
from hypothesis import strategies as st

from payivr.core.errors import IllegalTransition
from payivr.core.plan import (
    CallerHungUp,
    CapturePlan,
    Collect,
    DigitsEntered,
    Field,
    FieldReport,
    Finish,
    InputTimeout,
    MaskRecording,
    Play,
    ProcessorAnswered,
    ProcessPayment,
    ReturnCall,
    SayAmount,
    SayDigits,
    State,
    UnmaskRecording,
)
from payivr.core.plan.table import FIELD_OF_STATE, TRANSITIONS
from payivr.core.processor import Operation, ProcessorAnswer, ResultCode
from payivr.core.prompts import LANGUAGES, PROMPT_IDS, load_prompts
from payivr.core.secrets import SecretDigits
from tests.unit.plan_support import TEST_PANS, VISA, answer, key, new_plan

# What a caller might key: good values, bad ones, empty, with any terminator.
# "good" stands for the right answer to whatever field is asked, so walks get deep.
ENTRIES = st.sampled_from(
    ["good", "good", "good", "", "", VISA, "378282246310005", "4111111111111112", "4111", "",
     "1228", "1326", "0120", "123", "1234", "12", "1", "2", "7"]
)  # fmt: skip
GOOD = {Field.CARD_NUMBER: VISA, Field.EXPIRY: "1228", Field.CVV: "123", Field.CONFIRM: "1"}
TERMINATORS = st.sampled_from(["#", "#", "#", "*", None])
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["digits"] * 16 + ["timeout"] * 2 + ["answer", "hangup"]),
        ENTRIES,
        TERMINATORS,
    ),
    min_size=8,
    max_size=40,
)
PLANS = st.builds(
    lambda op, confirm, optional, token_cvv, attempts: new_plan(
        op,
        token="tok_abc" if op is Operation.TOKEN_SALE else None,
        confirm_card=confirm,
        cvv_optional=optional,
        token_sale_cvv=token_cvv,
        attempts=attempts,
    ),
    st.sampled_from(list(Operation)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(1, 4),
)
ANSWERS = [
    ProcessorAnswer(ResultCode.APPROVED, None, "654321", None, "00"),
    ProcessorAnswer(ResultCode.DECLINED, "card-declined", None, None, "05"),
    ProcessorAnswer(ResultCode.FAILED, "processor-timeout"),
]


@settings(max_examples=200, deadline=None)
@given(PLANS, STEPS, st.sampled_from(ANSWERS))
def test_random_walks_keep_the_invariants(
    plan: CapturePlan, steps: list[tuple[str, str, str | None]], reply: ProcessorAnswer
) -> None:
    emitted = list(plan.start())
    handed: list[SecretDigits] = []
    reports: list[FieldReport | None] = []
    for kind, text, terminator in steps:
        if plan.state is State.DONE:
            break
        if kind == "hangup":
            emitted += plan.handle(CallerHungUp())
        elif plan.state in (State.PROCESSING, State.PROCESSING_CALLER_GONE):
            emitted += plan.handle(ProcessorAnswered(reply))
        elif kind == "timeout":
            emitted += plan.handle(InputTimeout(FIELD_OF_STATE[plan.state]))
        else:
            field = FIELD_OF_STATE[plan.state]
            digits = SecretDigits(GOOD[field] if text == "good" else text)
            handed.append(digits)
            emitted += plan.handle(DigitsEntered(field, digits, terminator))
            reports.append(plan.last_field)
    if plan.state in (State.PROCESSING, State.PROCESSING_CALLER_GONE):
        emitted += plan.handle(ProcessorAnswered(reply))
    if plan.state is not State.DONE:
        emitted += plan.handle(CallerHungUp())
    assert plan.state is State.DONE
    assert plan.outcome is not None
    event(f"{plan.outcome.code}:{plan.outcome.reason}")
    if plan.merchant.capture.cvv_optional and any(
        r is not None and r.reason == "skipped" for r in reports
    ):
        event("cvv skipped")

    # Exactly one Finish, and it matches the plan's outcome.
    finishes = [c for c in emitted if isinstance(c, Finish)]
    assert len(finishes) == 1 and finishes[0].outcome == plan.outcome
    # Masks and unmasks alternate, and no mask is left on at Finish.
    depth = 0
    for command in emitted:
        if isinstance(command, MaskRecording):
            assert depth == 0
            depth = 1
        elif isinstance(command, UnmaskRecording):
            assert depth == 1
            depth = 0
        elif isinstance(command, Finish):
            assert depth == 0
    # Nothing asks the caller for anything after the Finish.
    after = emitted[emitted.index(finishes[0]) + 1 :]
    assert all(isinstance(c, Play | SayDigits | ReturnCall) for c in after)
    assert after == [] or isinstance(after[-1], ReturnCall)
    # Every prompt is in the catalogue.
    for command in emitted:
        if isinstance(command, Play | Collect):
            assert command.prompt in PROMPT_IDS
    # Every digit handed to the plan is wiped by the end, and so is the card.
    assert all(d.wiped for d in handed)
    for command in emitted:
        if isinstance(command, ProcessPayment) and command.card is not None:
            assert command.card.wiped
    # SayDigits never says more than a last four or an auth code.
    for command in emitted:
        if isinstance(command, SayDigits):
            assert command.digits in {"1111", "0005", "654321"}
    # No command's repr shows a test card number.
    text = repr(emitted)
    assert not any(pan in text for pan in TEST_PANS)


def test_every_prompt_the_plan_emits_exists_in_every_language() -> None:
    for language in LANGUAGES:
        assert set(load_prompts(language)) == PROMPT_IDS


def test_table_handlers_exist() -> None:
    for transition in TRANSITIONS.values():
        assert callable(getattr(CapturePlan, transition.handler))


def test_repr_and_str_of_every_command_and_event_show_no_card_digits() -> None:
    plan = new_plan(confirm_card=True)
    commands = plan.start()
    pan, expiry, cvv = SecretDigits(VISA), SecretDigits("1228"), SecretDigits("737")
    events: list[object] = [
        DigitsEntered(Field.CARD_NUMBER, pan, "#"),
        DigitsEntered(Field.EXPIRY, expiry, None),
        DigitsEntered(Field.CVV, cvv, None),
    ]
    for entry in events:
        commands += plan.handle(entry)  # type: ignore[arg-type]
    confirm = DigitsEntered(Field.CONFIRM, SecretDigits("1"), None)
    events.append(confirm)
    commands += plan.handle(confirm)
    payment = commands[-1]
    assert isinstance(payment, ProcessPayment)
    text_before_wipe = " ".join(repr(x) + str(x) for x in [*commands, *events])
    reply = answer()
    events += [reply, CallerHungUp(), InputTimeout(Field.CVV)]
    commands += plan.handle(reply)
    commands.append(SayAmount(1250, "EUR"))
    text = text_before_wipe + " ".join(repr(x) + str(x) for x in [*commands, *events])
    for secret in (VISA, "411111111111", "1228", "737"):
        assert secret not in text
    assert "1111" in text  # the last four may show, and do


def test_events_and_commands_are_frozen() -> None:
    event = InputTimeout(Field.CVV)
    try:
        event.field = Field.EXPIRY  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("events must be frozen")


def test_key_helper_rejects_nothing_silently() -> None:
    # The helper the other tests use must drive the real plan, not a shortcut.
    plan = new_plan()
    plan.start()
    try:
        plan.handle(InputTimeout(Field.EXPIRY))
    except IllegalTransition:
        pass
    else:
        raise AssertionError("wrong field must be illegal")
    assert key(plan, VISA)[0] == Collect(Field.EXPIRY, "enter-expiry", 1, 4, 15000, 5000)
