"""The caller's audio for the agent-media tests: speech, in-band DTMF, RFC 2833 keys.

Speech is espeak-ng's voice resampled to 8 kHz by sox; tones are generated; both are
A-law (PCMA, what payivr's FreeSWITCH and SIPp speak) in 20 ms frames. The result is
a list of RtpPacket for payivr.stack.rtp_pcap.write_pcap, plus which frames are
speech, so a test knows what the agent side should hear.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

from payivr.stack.rtp_pcap import EVENT_PT, EVENTS, PCMA_PT, PTIME_MS, RtpPacket, event_payload

RATE = 8000
FRAME = 160
DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}  # fmt: skip
SPEECH_TEXT = (
    "Thank you for calling. I will stay on the line while you key your card. "
    "Please go ahead whenever you are ready, and tell me if anything is unclear."
)


def _alaw_encode_sample(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0x00
    magnitude = min(abs(sample), 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (code | sign) ^ 0x55


def _alaw_decode_sample(byte: int) -> int:
    byte ^= 0x55
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    magnitude = (mantissa << 4) + 8 if exponent == 0 else (mantissa << 4) + 264 << exponent - 1
    return magnitude if byte & 0x80 else -magnitude


_DECODE = [_alaw_decode_sample(b) for b in range(256)]


def alaw_encode(samples: list[int]) -> bytes:
    return bytes(_alaw_encode_sample(s) for s in samples)


def alaw_decode(payload: bytes) -> list[int]:
    return [_DECODE[b] for b in payload]


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def speech_samples(text: str = SPEECH_TEXT) -> list[int]:
    """espeak-ng's voice as 8 kHz signed 16-bit samples."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise RuntimeError("espeak-ng and sox are needed (Debian: espeak-ng sox)")
    with tempfile.TemporaryDirectory(prefix="payivr-speech-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "8k.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, timeout=30)
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True, timeout=30
        )
        with wave.open(str(out)) as w:
            data = w.readframes(w.getnframes())
    return [int.from_bytes(data[i : i + 2], "little", signed=True) for i in range(0, len(data), 2)]


def tone_samples(digit: str, ms: int, amplitude: int = 7000) -> list[int]:
    low, high = DTMF[digit]
    n = RATE * ms // 1000
    return [
        int(
            amplitude
            * (math.sin(2 * math.pi * low * i / RATE) + math.sin(2 * math.pi * high * i / RATE))
        )
        for i in range(n)
    ]


@dataclass
class CallerAudio:
    """Builds the caller's RTP stream frame by frame."""

    packets: list[RtpPacket] = field(default_factory=list)
    speech_frames: list[list[int]] = field(default_factory=list)  # as sent
    inband_digits: str = ""
    event_digits: str = ""
    _seq: int = 1
    _ts: int = 0
    _slot: int = 0

    @property
    def duration_s(self) -> float:
        return self._slot * PTIME_MS / 1000

    def _audio(self, samples: list[int]) -> None:
        samples = samples + [0] * (-len(samples) % FRAME)
        for i in range(0, len(samples), FRAME):
            frame = samples[i : i + FRAME]
            self.packets.append(
                RtpPacket(
                    self._slot * PTIME_MS / 1000,
                    PCMA_PT,
                    False,
                    self._seq,
                    self._ts,
                    alaw_encode(frame),
                )
            )
            self._seq += 1
            self._ts += FRAME
            self._slot += 1

    def speech(self, samples: list[int]) -> None:
        self._audio(samples)
        for i in range(0, len(samples) - FRAME + 1, FRAME):
            self.speech_frames.append(samples[i : i + FRAME])

    def silence(self, ms: int) -> None:
        self._audio([0] * (RATE * ms // 1000))

    def inband(self, digits: str, tone_ms: int = 100, gap_ms: int = 100) -> None:
        """Digits as tones in the audio, as a phone that sends DTMF in-band does."""
        for digit in digits:
            self._audio(tone_samples(digit, tone_ms))
            self.silence(gap_ms)
        self.inband_digits += digits

    def events(self, digits: str, tone_ms: int = 100, gap_ms: int = 100) -> None:
        """Digits as RFC 2833 events (the audio pauses meanwhile, as a phone does)."""
        for digit in digits:
            slots = tone_ms // PTIME_MS
            start_ts = self._ts
            for n in range(slots + 2):  # the last packet (E bit) is sent three times
                end = n >= slots - 1
                duration = min(n + 1, slots) * FRAME
                self.packets.append(
                    RtpPacket(
                        self._slot * PTIME_MS / 1000,
                        EVENT_PT,
                        n == 0,
                        self._seq,
                        start_ts,
                        event_payload(EVENTS[digit], end, duration),
                    )
                )
                self._seq += 1
                if n < slots:
                    self._slot += 1
            self._ts = start_ts + slots * FRAME
            self.silence(gap_ms)
        self.event_digits += digits
