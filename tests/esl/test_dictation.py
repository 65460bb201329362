"""Paying by voice: the ESL application against the fake FreeSWITCH, whose unicast
stream carries the corpus' speech, with pocketsphinx and a real Redis.

After each call everything the application wrote or sent (logs, Redis, outbox, the
ESL traffic) and the process's stderr (where an unsilenced recogniser would print
what it heard) are searched for the card data.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import json
import math
import wave
from pathlib import Path

import pytest

from payivr.core.prompts import PROMPT_IDS
from payivr.core.speech_input import InputMode
from tests.esl.harness import EslHarness
from tests.esl.peer import FakeCall, HangUp, Input, Keys, run_call
from tests.esl.test_calls import Stack
from tests.esl.unicast_caller import Press, Speak
from tests.fixtures.speech.make_corpus import CARDS, chunks
from tests.speech.corpus import english, first

VOICE = "flite-kal-100"
PAN, EXPIRY, CVV = CARDS[0]  # 4111111111111111, 1228, 123
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def short_prompts(folder: Path) -> Path:
    """Every prompt and digit file as a 120 ms tone: the test is about the stream and
    the recogniser, not the wording, and keeps the call short."""
    tone = array.array(
        "h", (int(3000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(960))
    ).tobytes()
    names = [f"en/{p}.wav" for p in PROMPT_IDS] + [f"en/digits/{d}.wav" for d in range(10)]
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(tone)
    return folder


def said(kind: str, chunk: int = 0, card: int = 0, voice: str = VOICE) -> Speak:
    root, items = english()
    return Speak(first(items, voice=voice, kind=kind, card=card, chunk=chunk).audio(root))


def yes() -> Speak:
    root, items = english()
    return Speak(first(items, voice=VOICE, kind="yesno", digits="1").audio(root))


def whole_card() -> list[Input]:
    inputs: list[Input] = []
    for n in range(len(chunks(PAN))):
        inputs += [said("chunk", n), yes()]
    return [*inputs, said("expiry"), yes(), said("cvv"), yes()]


async def speech_call(
    h: EslHarness, inputs: list[Input], language: str = "en"
) -> tuple[FakeCall, str]:
    session = h.new_session(input_mode=InputMode.SPEECH, language=language)
    headers = {"X-Pay-Merchant": "acme", "X-Pay-Order": "A1001", "X-Payivr-Session": session.id}
    from tests.esl.peer import CallScript

    script = CallScript(sip_headers=headers, inputs=inputs, recordings=("/var/rec/cc.wav",))
    call = await run_call(script, h.server.port, timeout=120)
    await h.idle(timeout=20)
    return call, session.id


def assert_nothing_kept(
    h: EslHarness, call: FakeCall, stderr: str, card: tuple[str, str, str] = CARDS[0]
) -> None:
    pan, expiry, cvv = card
    texts = {
        "log": "\n".join(h.log.lines),
        "redis": "\n".join(h.redis_dump()),
        "outbox": json.dumps(h.outbox()),
        "esl": call.received.decode("utf-8", "replace"),
        "stderr": stderr,
    }
    for where, text in texts.items():
        for secret in (pan, pan[:8], pan[4:12], pan[-11:-4], expiry + cvv):
            assert secret not in text, f"card digits in {where}"
        # A transcript would show as digit words.
        transcript = " ".join(WORDS[int(d)] for d in pan[:4])
        assert transcript not in text.lower(), f"a transcript in {where}"
    assert call.leaks == [] and call.errors == [], (call.leaks, call.errors)
    assert not any("Traceback" in line for line in h.log.lines)


def with_prompts(h: EslHarness, folder: Path) -> None:
    h.options = dataclasses.replace(h.options, prompts_dir=short_prompts(folder))


def test_approved_sale_said_end_to_end(
    redis_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        stack = Stack(redis_url)
        with_prompts(stack.h, tmp_path)
        async with stack as h:
            call, session_id = await speech_call(h, whole_card())
            stored = h.load(session_id)
            assert stored.result is not None, call.errors
            assert stored.result.code == "approved", stored.result
            assert (stored.result.card_brand, stored.result.card_last4) == ("visa", "1111")
            bye = call.bye_headers or {}
            assert bye["X-Pay-Result"] == "approved"
            # One unicast, over UDP on loopback; the prompts went through it.
            assert len(call.unicast_requests) == 1
            request = call.unicast_requests[0]
            assert request["transport"] == "udp" and request["remote-ip"] == "127.0.0.1"
            assert call.unicast is not None and call.unicast.frames_received > 100
            # No playback application ran between the first listen and the result
            # (it would have ended the stream); the auth code's `say` ended it.
            assert call.unicast_ended_by == "say"
            playbacks = [arg for app, arg in call.played if app == "playback"]
            assert not any("say-" in p or "readback" in p for p in playbacks)
            assert not any(app == "play_and_get_digits" for app, _ in call.played)
            # Recordings masked while the card was said, unmasked after.
            masks = [a.split()[2] for a in call.apis if a.startswith("uuid_record")]
            assert masks == ["mask", "unmask"]
            assert call.inputs == []
            events = [f for _, f in h.client.xrange("payivr:events")]
            completed = [e for e in events if e.get("event") == "field.completed"]
            assert [e["field"] for e in completed] == ["card_number", "expiry", "cvv"]
            out, err = capfd.readouterr()
            assert_nothing_kept(h, call, out + err)

    asyncio.run(scenario())


def test_a_19_digit_card_said_end_to_end(
    redis_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A Visa of 19 digits whose first 16 fail Luhn: the IVR asks for the remaining
    three after the fourth chunk (docs/dictation.md, "Card lengths")."""
    card = 6
    pan = CARDS[card][0]
    assert len(pan) == 19
    voice = "flite-rms-95"  # the corpus voice pocketsphinx hears best
    inputs: list[Input] = []
    for n in range(len(chunks(pan))):
        inputs += [said("chunk", n, card, voice), yes()]
    inputs += [said("expiry", 0, card, voice), yes(), said("cvv", 0, card, voice), yes()]

    async def scenario() -> None:
        stack = Stack(redis_url)
        with_prompts(stack.h, tmp_path)
        async with stack as h:
            call, session_id = await speech_call(h, inputs)
            stored = h.load(session_id)
            assert stored.result is not None, call.errors
            assert stored.result.code == "approved", stored.result
            assert (stored.result.card_brand, stored.result.card_last4) == ("visa", pan[-4:])
            assert call.inputs == []
            events = [f for _, f in h.client.xrange("payivr:events")]
            completed = [e for e in events if e.get("event") == "field.completed"]
            assert [(e["field"], e["digit_count"]) for e in completed] == [
                ("card_number", "19"),
                ("expiry", "4"),
                ("cvv", "3"),
            ]
            out, err = capfd.readouterr()
            assert_nothing_kept(h, call, out + err, CARDS[card])

    asyncio.run(scenario())


def test_a_key_press_wins_and_the_rest_is_keyed(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        stack = Stack(redis_url)
        with_prompts(stack.h, tmp_path)
        async with stack as h:
            inputs: list[Input] = [
                said("chunk", 0),
                yes(),
                Press(),
                Keys(PAN + "#"),
                Keys(EXPIRY),
                Keys(CVV),
            ]
            call, session_id = await speech_call(h, inputs)
            stored = h.load(session_id)
            assert stored.result is not None and stored.result.code == "approved"
            # The keypad entry ended the stream for good; later fields were keyed.
            assert call.unicast_ended_by == "play_and_get_digits"
            assert len(call.unicast_requests) == 1
            assert_nothing_kept(h, call, "")

    asyncio.run(scenario())


def test_hang_up_mid_chunk_is_caller_hangup(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        stack = Stack(redis_url)
        with_prompts(stack.h, tmp_path)
        async with stack as h:
            call, session_id = await speech_call(h, [said("chunk", 0), yes(), HangUp()])
            stored = h.load(session_id)
            assert stored.result is not None
            assert (stored.result.code, stored.result.reason) == ("cancelled", "caller-hangup")
            assert_nothing_kept(h, call, "")

    asyncio.run(scenario())


def test_a_language_without_a_recogniser_is_keyed(redis_url: str, tmp_path: Path) -> None:
    """No Vosk model for Spanish here: no stream is opened, every field is keyed."""

    async def scenario() -> None:
        stack = Stack(redis_url)
        with_prompts(stack.h, tmp_path)
        async with stack as h:
            inputs: list[Input] = [Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)]
            call, session_id = await speech_call(h, inputs, language="es")
            stored = h.load(session_id)
            assert stored.result is not None and stored.result.code == "approved"
            assert call.unicast_requests == []
            assert_nothing_kept(h, call, "")

    asyncio.run(scenario())
