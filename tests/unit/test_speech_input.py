"""The pure parts of speech input: words to secret digits, endpointing."""

from __future__ import annotations

import array

import pytest

from payivr.core.speech_input import (
    Endpointer,
    Endpointing,
    Grammar,
    InputMode,
    words_to_digits,
)


def test_digit_words_become_secret_digits() -> None:
    digits = words_to_digits(["four", "one", "oh", "nine"], Grammar("en", 4))
    assert digits is not None and digits.reveal() == "4109"
    assert "4109" not in repr(digits)


@pytest.mark.parametrize(
    ("language", "words", "expected"),
    [
        ("es", ["cuatro", "cero", "nueve", "uno"], "4091"),
        ("pt", ["três", "um", "dois", "zero"], "3120"),
        ("nl", ["vier", "een", "nul", "negen"], "4109"),
    ],
)
def test_each_language_has_its_digit_words(language: str, words: list[str], expected: str) -> None:
    digits = words_to_digits(words, Grammar(language, 4))
    assert digits is not None and digits.reveal() == expected


@pytest.mark.parametrize(
    "words", [["four", "one"], ["four", "one", "one", "one", "one"], ["four", "won", "one", "one"]]
)
def test_wrong_count_or_unknown_word_is_nothing(words: list[str]) -> None:
    assert words_to_digits(words, Grammar("en", 4)) is None


def test_yes_and_no_are_the_keys_one_and_two() -> None:
    grammar = Grammar("es", 0)
    yes = words_to_digits(["sí"], grammar)
    no = words_to_digits(["no"], grammar)
    assert yes is not None and yes.reveal() == "1"
    assert no is not None and no.reveal() == "2"
    assert words_to_digits(["sí", "no"], grammar) is None


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="fr"):
        words_to_digits(["un"], Grammar("fr", 1))


def test_input_modes() -> None:
    assert not InputMode.DTMF.listens
    assert InputMode.SPEECH.listens and InputMode.ANY.listens


def frame(level: int) -> bytes:
    return array.array("h", [level if i % 2 else -level for i in range(160)]).tobytes()


def test_endpointer_needs_a_run_of_voiced_frames_then_silence() -> None:
    ep = Endpointer(Endpointing(threshold=500, start_frames=3, end_silence_ms=100))
    for level in (2000, 0, 2000, 2000):  # a click does not start speech
        ep.push(frame(level))
    assert not ep.started
    ep.push(frame(2000))
    assert ep.started and not ep.ended
    for _ in range(4):
        ep.push(frame(100))
    assert not ep.ended
    ep.push(frame(100))
    assert ep.ended


def test_endpointer_caps_the_length_of_speech() -> None:
    ep = Endpointer(Endpointing(start_frames=1, max_speech_ms=200))
    for _ in range(10):
        ep.push(frame(3000))
    assert ep.ended
