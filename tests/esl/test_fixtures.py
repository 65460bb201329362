"""The FreeSWITCH transcripts are the repository's own, complete and free of card data.

A fresh clone must run every ESL and agent test: the recordings live under
tests/fixtures/freeswitch/transcripts (made by tests/fixtures/freeswitch/record.py),
nothing is read from outside the repository, and a missing one fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.esl import transcripts
from tests.fixtures.freeswitch.scenarios import SCENARIOS
from tests.fixtures.freeswitch.transcript import (
    SANDBOX_TEST_CARDS,
    card_problems,
    keyed_input_problems,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_transcripts_are_read_from_inside_the_repository() -> None:
    assert transcripts.TRANSCRIPTS.is_relative_to(REPO / "tests" / "fixtures")
    assert not transcripts.TRANSCRIPTS.is_symlink()
    for path in transcripts.TRANSCRIPTS.iterdir():
        assert not path.is_symlink(), path


@pytest.mark.parametrize("name", transcripts.NAMES)
def test_every_scenario_has_its_recording(name: str) -> None:
    path = transcripts.TRANSCRIPTS / f"{name}.txt"
    assert path.is_file(), f"{path} missing: run tests/fixtures/freeswitch/record.py"
    header = path.read_text(errors="replace").splitlines()[:12]
    assert (
        header[0]
        == f"# payivr transcript: {name} (recorded by tests/fixtures/freeswitch/record.py)"
    )
    assert any(line.startswith("# FreeSWITCH: FreeSWITCH version: 1.10.") for line in header)
    assert transcripts.parse(path), "no wire block"


def test_no_recording_is_left_over_from_a_removed_scenario() -> None:
    recorded = sorted(p.stem for p in transcripts.TRANSCRIPTS.glob("*.txt"))
    assert recorded == sorted(transcripts.NAMES)


@pytest.mark.parametrize("name", transcripts.NAMES)
def test_recordings_hold_no_card_number_but_sandbox_test_cards(name: str) -> None:
    blocks = transcripts.parse(transcripts.TRANSCRIPTS / f"{name}.txt")
    assert card_problems(raw for _, _, raw in blocks) == []


def _event(body: str) -> bytes:
    data = body.encode() + b"\n\n"
    return f"Content-Length: {len(data)}\nContent-Type: text/event-plain\n\n".encode() + data


def test_the_guard_finds_a_real_looking_card_in_a_variable_and_in_keyed_digits() -> None:
    card = "4242424242424242"  # Luhn-valid, not a sandbox card
    assert card not in SANDBOX_TEST_CARDS
    assert card_problems([_event(f"Event-Name: X\nvariable_pan: {card}")])
    keyed = [_event(f"Event-Name: DTMF\nDTMF-Digit: {d}") for d in card]
    assert card_problems(keyed) == ["the keyed DTMF digits hold a 16-digit card number"]
    # The sandbox card, a clock value and a non-Luhn run pass.
    assert card_problems([_event("Event-Name: X\nvariable_pan: 4111111111111111")]) == []
    assert card_problems([_event("Event-Name: X\nEvent-Date-Timestamp: 1764775355084519")]) == []
    assert card_problems([_event("Event-Name: X\nvariable_x: 4242424242424241")]) == []


def test_scenarios_key_only_sandbox_test_cards() -> None:
    assert keyed_input_problems("4242424242424242#")
    for scenario in SCENARIOS:
        for keying in scenario.keyings:
            assert keyed_input_problems(keying.digits) == [], scenario.name
