"""In-band DTMF: the tones the caller pcaps carry and the detector the recording
tests trust, checked on generated audio. Needs no FreeSWITCH."""

from __future__ import annotations

import math
import random

import pytest

from payivr.stack.dtmf_tones import (
    RATE,
    alaw_decode,
    alaw_encode,
    frequencies,
    tone_samples,
    ulaw_decode,
    ulaw_encode,
)
from payivr.stack.rtp_pcap import EVENT_PT, PCMA_PT, Keying, decode_events, rtp_packets
from tests.support.dtmf_detector import alaw_samples, detect, keys

PAN = "4111111111111111"
ALL_KEYS = "0123456789*#ABCD"


def silence(ms: int) -> list[int]:
    return [0] * (RATE * ms // 1000)


def keyed(digits: str, tone_ms: int = 100, gap_ms: int = 200) -> list[int]:
    out = silence(gap_ms)
    for key in digits:
        out += tone_samples(key, 0, RATE * tone_ms // 1000) + silence(gap_ms)
    return out


def sine(frequency: float, ms: int, peak: float) -> list[int]:
    return [
        round(peak * math.sin(2 * math.pi * frequency * n / RATE)) for n in range(RATE * ms // 1000)
    ]


def test_alaw_round_trip_keeps_every_code_and_levels_are_a_phones() -> None:
    assert all(alaw_encode(alaw_decode(code)) == code for code in range(256))
    assert alaw_encode(0) == 0xD5  # the silence byte of rtp_pcap
    tone = tone_samples("5", 0, RATE)
    rms_db = 10 * math.log10(sum(x * x for x in tone) / len(tone))
    # -8 and -6 dBm0 together: about -3.9 dBm0, i.e. ~3.1 dB + 3.9 dB below full scale
    full_scale_sine_db = 10 * math.log10(32256**2 / 2)
    assert -8.0 < rms_db - full_scale_sine_db < -6.0, rms_db - full_scale_sine_db
    assert frequencies("#") == (941, 1477) and frequencies("A") == (697, 1633)
    with pytest.raises(ValueError):
        frequencies("x")


def test_every_key_is_found_once_for_as_long_as_it_sounds() -> None:
    runs = detect(keyed(ALL_KEYS))
    assert keys(runs) == ALL_KEYS
    for run in runs:
        assert 0.095 <= run.end_s - run.start_s <= 0.12, run


def test_repeated_keys_are_separate_runs_through_alaw() -> None:
    audio = [alaw_decode(alaw_encode(x)) for x in keyed(PAN, tone_ms=60, gap_ms=60)]
    assert keys(detect(audio)) == PAN


@pytest.mark.parametrize("offset", [0, 17, 80, 123])
def test_one_20ms_packet_of_tone_is_enough_wherever_it_falls(offset: int) -> None:
    audio = silence(100)
    audio[offset + 400 : offset + 560] = tone_samples("7", 0, 160)
    assert keys(detect(audio)) == "7"


def test_no_key_in_silence_noise_single_or_non_dtmf_tones_or_too_quiet_ones() -> None:
    rng = random.Random(7)
    noise = [round(rng.gauss(0, 3000)) for _ in range(RATE)]
    dial_tone = [a + b for a, b in zip(sine(350, 1000, 4000), sine(440, 1000, 4000), strict=True)]
    one_tone = sine(1209, 1000, 8000)
    quiet = [round(x / 20) for x in tone_samples("5", 0, RATE)]  # -30 dB: about -34 dBm0
    for audio in (silence(1000), noise, dial_tone, one_tone, quiet):
        assert detect(audio) == []


def test_a_tone_under_louder_noise_is_not_claimed() -> None:
    rng = random.Random(3)
    tone = tone_samples("3", 0, RATE // 2)
    drowned = [x + round(rng.gauss(0, 12000)) for x in tone]
    assert detect(drowned) == []


def test_a_pcap_phone_keying_both_ways_sends_events_and_the_same_digits_as_tones() -> None:
    packets = rtp_packets([Keying(0.2, PAN + "#")], 6.0, inband=True)
    seqs = [p.seq for p in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert decode_events((p.payload_type, p.timestamp, p.payload) for p in packets) == PAN + "#"
    audio = [p for p in packets if p.payload_type == PCMA_PT]
    # the audio never pauses: one packet per 20 ms slot, the keys' ones carrying tones
    assert [p.timestamp for p in audio] == [160 * n for n in range(300)]
    runs = detect(alaw_samples([p.payload for p in audio]))
    assert keys(runs) == PAN + "#"
    first_event = min(p.time_s for p in packets if p.payload_type == EVENT_PT)
    # aligned with the events, to the detector's resolution (its 20 ms window)
    assert first_event - 0.02 < runs[0].start_s <= first_event
    assert 0.1 <= runs[0].end_s - runs[0].start_s < 0.13
    # without in-band keying the audio is silent
    plain = rtp_packets([Keying(0.2, PAN + "#")], 6.0)
    assert detect(alaw_samples([p.payload for p in plain if p.payload_type == PCMA_PT])) == []


def test_ulaw_codes_as_g711_does() -> None:
    """The u-law coder of the spoken-card pcaps (checked against Python's audioop,
    gone from 3.13, for every 16-bit value when it was written)."""
    assert (ulaw_encode(0), ulaw_decode(0xFF)) == (0xFF, 0)
    assert (ulaw_encode(32767), ulaw_encode(-32768)) == (0x80, 0x00)
    assert (ulaw_decode(0x80), ulaw_decode(0x00)) == (32124, -32124)
    assert (ulaw_encode(1000), ulaw_encode(-1000)) == (0xCE, 0x4E)
    for value in range(-32768, 32768, 7):
        assert abs(ulaw_decode(ulaw_encode(value)) - value) <= max(16, abs(value) // 12), value
    # Every code but u-law's "negative zero" (0x7F) survives decoding and encoding.
    assert [b for b in range(256) if ulaw_encode(ulaw_decode(b)) != b] == [0x7F]
