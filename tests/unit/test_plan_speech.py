"""The capture plan's speech paths (docs/dictation.md): chunks heard, read back,
confirmed or repeated; keys winning over speech; silence, noise and hang-ups."""

from __future__ import annotations

import dataclasses

import pytest

from payivr.core.card import BRANDS, PAN_LENGTHS
from payivr.core.errors import IllegalTransition
from payivr.core.plan import (
    CallerHungUp,
    CapturePlan,
    Command,
    DigitsEntered,
    Field,
    Finish,
    InputTimeout,
    Listen,
    MaskRecording,
    Play,
    ProcessPayment,
    ReadBackDigits,
    SpeechHeard,
    SpeechUnclear,
    State,
    UnmaskRecording,
)
from payivr.core.plan.machine import MAX_CHUNK_REPEATS, MAX_READBACK_MISSES, SPOKEN_PAN_LENGTHS
from payivr.core.reasons import Reason
from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import InputMode
from tests.unit.plan_support import AMEX, TODAY, VISA, answer, merchant, request


def speech_plan(mode: InputMode = InputMode.SPEECH, **capture: object) -> CapturePlan:
    req = dataclasses.replace(request(), input_mode=mode)
    return CapturePlan(req, merchant(**capture), TODAY)


def say(plan: CapturePlan, digits: str) -> list[Command]:
    """Say a chunk into the field the plan listens for."""
    listening = {State.CARD_NUMBER: Field.CARD_NUMBER, State.EXPIRY: Field.EXPIRY}
    field = listening.get(plan.state, Field.CVV)
    return plan.handle(SpeechHeard(field, SecretDigits(digits)))


def yes(plan: CapturePlan) -> list[Command]:
    return plan.handle(SpeechHeard(Field.READBACK, SecretDigits("1")))


def no(plan: CapturePlan) -> list[Command]:
    return plan.handle(SpeechHeard(Field.READBACK, SecretDigits("2")))


def listens(commands: list[Command]) -> list[Listen]:
    return [c for c in commands if isinstance(c, Listen)]


def say_card(plan: CapturePlan, pan: str) -> list[Command]:
    commands: list[Command] = []
    for i in range(0, len(pan), 4):
        say(plan, pan[i : i + 4])
        commands = yes(plan)
    return commands


def test_start_listens_for_the_first_four_digits_with_the_keypad_entry_as_fallback() -> None:
    plan = speech_plan()
    commands = plan.start()
    assert MaskRecording() in commands
    (listen,) = listens(commands)
    assert listen.field is Field.CARD_NUMBER
    assert listen.length == 4
    assert listen.prompt == "say-card-number"
    assert listen.keyed.field is Field.CARD_NUMBER
    assert listen.keyed.prompt == "enter-card-number"
    assert listen.keyed.max_digits == 19


def test_any_mode_offers_both_in_the_prompt() -> None:
    (listen,) = listens(speech_plan(InputMode.ANY).start())
    assert listen.prompt == "say-or-key-card-number"


def test_dtmf_mode_is_unchanged() -> None:
    commands = speech_plan(InputMode.DTMF).start()
    assert not listens(commands)


def test_a_chunk_heard_is_read_back_from_the_digit_files_and_questioned() -> None:
    plan = speech_plan()
    plan.start()
    commands = say(plan, "4111")
    assert plan.state is State.READBACK
    assert commands[0] == Play("readback-intro")
    readback = commands[1]
    assert isinstance(readback, ReadBackDigits)
    assert readback.digits == SecretDigits("4111")
    (question,) = listens(commands)
    assert question.field is Field.READBACK and question.length == 0
    assert question.keyed.max_digits == 1
    # "yes": the next chunk.
    (listen,) = listens(yes(plan))
    assert listen.prompt == "say-next-digits" and listen.length == 4
    assert readback.digits.wiped is False  # kept as a confirmed chunk


def test_whole_visa_said_then_expiry_cvv_processed_with_the_same_card() -> None:
    plan = speech_plan()
    plan.start()
    commands = say_card(plan, VISA)
    (listen,) = listens(commands)
    assert listen.field is Field.EXPIRY and listen.length == 4
    assert plan.last_field is not None and plan.last_field.brand == "visa"
    assert plan.last_field.digit_count == 16
    say(plan, "1228")
    (listen,) = listens(yes(plan))
    assert listen.field is Field.CVV and listen.length == 3
    say(plan, "123")
    commands = yes(plan)
    payment = commands[-1]
    assert isinstance(payment, ProcessPayment) and payment.card is not None
    assert payment.card.pan == SecretDigits(VISA)
    assert payment.card.expiry == SecretDigits("1228")
    assert payment.card.cvv == SecretDigits("123")


def test_amex_is_said_as_four_four_four_three_with_a_four_digit_code() -> None:
    plan = speech_plan()
    plan.start()
    lengths = []
    for chunk in (AMEX[0:4], AMEX[4:8], AMEX[8:12]):
        say(plan, chunk)
        (listen,) = listens(yes(plan))
        lengths.append(listen.length)
    assert lengths == [4, 4, 3]
    say(plan, AMEX[12:])
    yes(plan)
    say(plan, "1228")
    (listen,) = listens(yes(plan))
    assert listen.length == 4


def test_a_chunk_rejected_is_wiped_and_said_again() -> None:
    plan = speech_plan()
    plan.start()
    say(plan, "4111")
    yes(plan)
    heard = SecretDigits("1112")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, heard))
    commands = no(plan)
    assert heard.wiped
    assert commands[0] == Play("say-again")
    (listen,) = listens(commands)
    assert listen.prompt == "say-next-digits" and listen.length == 4
    assert plan.state is State.CARD_NUMBER
    # The repeat is taken, and the first chunk was kept.
    say(plan, "1111")
    yes(plan)
    for chunk in ("1111", "1111"):
        say(plan, chunk)
        commands = yes(plan)
    assert listens(commands)[0].field is Field.EXPIRY


def test_too_many_repeats_of_a_chunk_count_as_a_failed_attempt_and_start_the_field_over() -> None:
    plan = speech_plan()
    plan.start()
    first = SecretDigits("4111")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, first))
    yes(plan)
    for _ in range(MAX_CHUNK_REPEATS):
        say(plan, "9999")
        no(plan)
    say(plan, "9999")
    commands = no(plan)
    assert first.wiped
    assert plan.last_field is not None
    assert (plan.last_field.valid, plan.last_field.reason) == (False, "not-confirmed")
    (listen,) = listens(commands)
    assert listen.prompt == "say-card-number"


def test_a_said_number_failing_luhn_gets_the_keyed_reprompt() -> None:
    # Mastercard numbers have 16 digits only: nothing more is asked for.
    plan = speech_plan()
    plan.start()
    commands = say_card(plan, "5555555555554445")
    assert Play("card-invalid-number") in commands
    assert plan.last_field is not None and plan.last_field.reason == "invalid-number"
    (listen,) = listens(commands)
    assert listen.prompt == "say-card-number"


def test_unknown_brand_is_said_after_the_first_chunk() -> None:
    plan = speech_plan()
    plan.start()
    say(plan, "9999")
    commands = yes(plan)
    assert Play("card-not-accepted") in commands
    assert plan.last_field is not None and plan.last_field.reason == "unknown-brand"


def test_expired_said_expiry_is_refused_like_a_keyed_one() -> None:
    plan = speech_plan()
    plan.start()
    say_card(plan, VISA)
    say(plan, "0120")
    commands = yes(plan)
    assert Play("expiry-expired") in commands
    assert listens(commands)[0].field is Field.EXPIRY


def test_key_press_wins_over_speech_and_drops_the_chunks_said() -> None:
    plan = speech_plan(InputMode.ANY)
    plan.start()
    first = SecretDigits("4111")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, first))
    yes(plan)
    # Barge-in: the driver ran the keypad entry of the whole field instead.
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(VISA), "#"))
    assert first.wiped
    assert listens(commands)[0].field is Field.EXPIRY
    assert plan.last_field is not None and plan.last_field.digit_count == 16


def test_mixed_speech_and_keys_across_fields() -> None:
    plan = speech_plan(InputMode.ANY)
    plan.start()
    plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(VISA), "#"))
    say(plan, "1228")
    yes(plan)
    commands = plan.handle(DigitsEntered(Field.CVV, SecretDigits("123"), None))
    assert isinstance(commands[-1], ProcessPayment)


def test_read_back_answered_by_keys_one_and_two() -> None:
    plan = speech_plan()
    plan.start()
    say(plan, "4111")
    commands = plan.handle(DigitsEntered(Field.READBACK, SecretDigits("2"), None))
    assert commands[0] == Play("say-again")
    say(plan, "4111")
    commands = plan.handle(DigitsEntered(Field.READBACK, SecretDigits("1"), None))
    assert listens(commands)[0].prompt == "say-next-digits"


def test_silence_repeats_the_chunk_then_fails_the_field() -> None:
    plan = speech_plan(attempts=2)
    plan.start()
    for _ in range(MAX_CHUNK_REPEATS):
        commands = plan.handle(InputTimeout(Field.CARD_NUMBER))
        assert commands[0] == Play("no-input")
        assert listens(commands)[0].field is Field.CARD_NUMBER
    plan.handle(InputTimeout(Field.CARD_NUMBER))
    assert plan.last_field is not None and plan.last_field.reason == "no-input"
    assert plan.state is State.CARD_NUMBER
    for _ in range(MAX_CHUNK_REPEATS):
        plan.handle(InputTimeout(Field.CARD_NUMBER))
    commands = plan.handle(InputTimeout(Field.CARD_NUMBER))
    assert plan.state is State.DONE
    finish = next(c for c in commands if isinstance(c, Finish))
    assert finish.outcome.reason is Reason.ATTEMPTS_EXHAUSTED
    assert UnmaskRecording() in commands


def test_noise_is_unclear_and_asked_again() -> None:
    plan = speech_plan()
    plan.start()
    commands = plan.handle(SpeechUnclear(Field.CARD_NUMBER))
    assert commands[0] == Play("speech-unclear")
    assert listens(commands)[0].length == 4


def test_unclear_or_silent_read_back_answer_is_asked_again_then_counts_as_no() -> None:
    plan = speech_plan()
    plan.start()
    heard = SecretDigits("4111")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, heard))
    assert plan.handle(SpeechUnclear(Field.READBACK))[0] == Play("speech-unclear")
    for _ in range(MAX_READBACK_MISSES - 1):
        assert plan.handle(InputTimeout(Field.READBACK))[0] == Play("no-input")
    commands = plan.handle(InputTimeout(Field.READBACK))
    assert heard.wiped
    assert commands[0] == Play("say-again")
    assert plan.state is State.CARD_NUMBER


def test_hang_up_mid_chunk_wipes_every_chunk_and_the_one_read_back() -> None:
    plan = speech_plan()
    plan.start()
    first = SecretDigits("4111")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, first))
    yes(plan)
    second = SecretDigits("1111")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, second))
    commands = plan.handle(CallerHungUp())
    assert first.wiped and second.wiped
    assert plan.state is State.DONE
    assert [type(c) for c in commands] == [UnmaskRecording, Finish]
    assert plan.outcome is not None and plan.outcome.reason is Reason.CALLER_HANGUP


def test_speech_for_another_field_is_illegal_and_changes_nothing() -> None:
    plan = speech_plan()
    plan.start()
    with pytest.raises(IllegalTransition):
        plan.handle(SpeechHeard(Field.EXPIRY, SecretDigits("1228")))
    assert plan.state is State.CARD_NUMBER
    say(plan, "4111")
    with pytest.raises(IllegalTransition):
        say(plan, "1111")  # the read-back question is out, not a chunk
    assert plan.state is State.READBACK


def test_the_recording_stays_masked_from_the_first_chunk_to_the_confirmation() -> None:
    plan = speech_plan(confirm_card=True)
    commands = plan.start()
    seen: list[Command] = list(commands)
    seen += say_card(plan, VISA)
    say(plan, "1228")
    seen += yes(plan)
    say(plan, "123")
    after_cvv = yes(plan)
    assert UnmaskRecording() not in seen
    # Unmasked after the first prompt of the keyed final confirmation, as keyed.
    assert after_cvv[1] == UnmaskRecording()
    answer_commands = plan.handle(DigitsEntered(Field.CONFIRM, SecretDigits("1"), None))
    assert isinstance(answer_commands[-1], ProcessPayment)
    finished = plan.handle(answer())
    assert plan.state is State.DONE
    assert any(isinstance(c, Finish) for c in finished)


# -- card lengths (docs/dictation.md, "Card lengths") ------------------------------

VISA_19 = "4571234567890123450"  # Luhn-valid at 19, not at its first 16
UNIONPAY_19 = "6222021234567890128"
MAESTRO_19 = "6759123456789012342"
DINERS_14 = "30569309025904"


def chunk_lengths(plan: CapturePlan, pan: str) -> tuple[list[int], list[Command]]:
    """Say ``pan`` chunk by chunk as the plan asks (each confirmed): the lengths it
    asked for and the commands after the last "yes"."""
    plan.start()
    asked, said = [4], 0
    commands: list[Command] = []
    while said < len(pan):
        length = asked[-1]
        say(plan, pan[said : said + length])
        said += length
        commands = yes(plan)
        following = listens(commands)
        if said < len(pan):
            (listen,) = following
            assert listen.field is Field.CARD_NUMBER
            asked.append(listen.length)
    return asked, commands


def test_spoken_lengths_are_lengths_the_brands_allow() -> None:
    assert set(SPOKEN_PAN_LENGTHS) == set(BRANDS)
    for brand, lengths in SPOKEN_PAN_LENGTHS.items():
        assert set(lengths) <= PAN_LENGTHS[brand]
        assert list(lengths) == sorted(lengths)


@pytest.mark.parametrize(
    ("pan", "lengths"),
    [
        (VISA, [4, 4, 4, 4]),
        (AMEX, [4, 4, 4, 3]),
        ("5555555555554444", [4, 4, 4, 4]),
        (VISA_19, [4, 4, 4, 4, 3]),
        (UNIONPAY_19, [4, 4, 4, 4, 3]),
        (MAESTRO_19, [4, 4, 4, 4, 3]),
        (DINERS_14, [4, 4, 4, 2]),
    ],
)
def test_a_card_is_said_in_the_chunks_its_brand_and_luhn_call_for(
    pan: str, lengths: list[int]
) -> None:
    plan = speech_plan()
    asked, commands = chunk_lengths(plan, pan)
    assert asked == lengths
    assert listens(commands)[0].field is Field.EXPIRY
    assert plan.last_field is not None and plan.last_field.valid
    assert plan.last_field.digit_count == len(pan)


def test_sixteen_digits_failing_luhn_ask_for_the_remaining_three_of_a_19_digit_card() -> None:
    plan = speech_plan()
    plan.start()
    for i in range(0, 16, 4):
        say(plan, VISA_19[i : i + 4])
        commands = yes(plan)
    (listen,) = listens(commands)
    assert listen.prompt == "say-remaining-digits" and listen.length == 3
    assert plan.last_field is None  # nothing judged yet
    heard = SecretDigits(VISA_19[16:])
    plan.handle(SpeechHeard(Field.CARD_NUMBER, heard))
    commands = yes(plan)
    assert listens(commands)[0].field is Field.EXPIRY
    say(plan, "1228")
    yes(plan)
    say(plan, "123")
    payment = yes(plan)[-1]
    assert isinstance(payment, ProcessPayment) and payment.card is not None
    assert payment.card.pan == SecretDigits(VISA_19)


def test_a_19_digit_card_whose_first_16_pass_luhn_is_taken_at_16() -> None:
    # The documented limit: the processor declines it; the keypad is the way out.
    plan = speech_plan()
    plan.start()
    commands = say_card(plan, "4111111111111111003"[:16])
    assert listens(commands)[0].field is Field.EXPIRY
    assert plan.last_field is not None and plan.last_field.digit_count == 16


def test_silence_where_more_digits_were_asked_for_ends_the_number_as_invalid() -> None:
    plan = speech_plan()
    plan.start()
    chunks = [SecretDigits(VISA_19[i : i + 4]) for i in range(0, 16, 4)]
    for chunk in chunks:
        plan.handle(SpeechHeard(Field.CARD_NUMBER, chunk))
        yes(plan)
    commands = plan.handle(InputTimeout(Field.CARD_NUMBER))
    assert all(c.wiped for c in chunks)
    assert Play("card-invalid-number") in commands
    assert plan.last_field is not None
    assert (plan.last_field.reason, plan.last_field.digit_count) == ("invalid-number", 16)
    (listen,) = listens(commands)
    assert listen.prompt == "say-card-number" and listen.length == 4


def test_the_remaining_digits_rejected_are_asked_for_again() -> None:
    plan = speech_plan()
    plan.start()
    for i in range(0, 16, 4):
        say(plan, VISA_19[i : i + 4])
        yes(plan)
    wrong = SecretDigits("999")
    plan.handle(SpeechHeard(Field.CARD_NUMBER, wrong))
    commands = no(plan)
    assert wrong.wiped
    (listen,) = listens(commands)
    assert listen.prompt == "say-remaining-digits" and listen.length == 3
    say(plan, VISA_19[16:])
    assert listens(yes(plan))[0].field is Field.EXPIRY


def test_a_key_press_for_the_remaining_digits_keys_the_whole_number() -> None:
    plan = speech_plan(InputMode.ANY)
    plan.start()
    chunks = [SecretDigits(VISA_19[i : i + 4]) for i in range(0, 16, 4)]
    for chunk in chunks:
        plan.handle(SpeechHeard(Field.CARD_NUMBER, chunk))
        yes(plan)
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(VISA_19), "#"))
    assert all(c.wiped for c in chunks)
    assert listens(commands)[0].field is Field.EXPIRY
    assert plan.last_field is not None and plan.last_field.digit_count == 19


def test_diners_failing_luhn_at_14_goes_on_to_16() -> None:
    plan = speech_plan()
    plan.start()
    for chunk in ("3056", "9309", "0259"):
        say(plan, chunk)
        yes(plan)
    say(plan, "05")  # 14 digits failing Luhn
    (listen,) = listens(yes(plan))
    assert (listen.prompt, listen.length) == ("say-remaining-digits", 2)
