"""The demo caller's voice: a sandbox card said by flite, as L16 8 kHz.

`payivr demo --input speech` needs someone to say the card. flite's `rms` voice,
slowed to 95 %, is the rendering of the test corpus (tests/fixtures/speech) that
pocketsphinx gets right every time (docs/dictation.md). This is the caller's side of
the demo, not payivr's: payivr itself never sends a card digit through a speech
synthesiser. flite writes its WAV to a pipe and sox converts it there: nothing is
written to disk but the caller's pcap (as for the keyed demo's RFC 2833 digits).
"""

from __future__ import annotations

import shutil
import subprocess

from payivr.stack.spoken_caller import SaidCard

VOICE = "rms"
DURATION_STRETCH = "0.95"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CHUNK = 4
FLITE = ("flite", "-voice", VOICE, "--setf", f"duration_stretch={DURATION_STRETCH}")
SOX_TO_L16 = (
    *("sox", "-t", "wav", "-"),  # flite's WAV on stdin
    *("-t", "raw", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", "-"),
)


class VoiceUnavailable(Exception):
    """flite or sox is not installed (Debian: `apt-get install flite sox`)."""


def missing_tools() -> list[str]:
    return [tool for tool in ("flite", "sox") if shutil.which(tool) is None]


def say(text: str) -> bytes:
    """`text` spoken, as raw L16 mono 8 kHz."""
    missing = missing_tools()
    if missing:
        raise VoiceUnavailable(f"needs {' and '.join(missing)} (apt-get install flite sox)")
    flite = subprocess.Popen(
        [*FLITE, "-t", text, "-o", "/dev/stdout"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        sox = subprocess.run(
            SOX_TO_L16,
            stdin=flite.stdout,
            capture_output=True,
            check=True,
            timeout=60,
        )
    finally:
        if flite.stdout is not None:
            flite.stdout.close()
        flite.wait(60)
    return sox.stdout


def _digits(digits: str) -> str:
    """ "four, one, one, one": the words spelled out, so flite does not read a number."""
    return ", ".join(WORDS[int(d)] for d in digits)


def said_card(pan: str, expiry: str, cvv: str) -> SaidCard:
    """What the demo caller says: the card four digits at a time, the expiry, the
    security code, and "yes" to each read-back."""
    chunks = [pan[i : i + CHUNK] for i in range(0, len(pan), CHUNK)]
    return SaidCard(
        chunks=[say(_digits(c)) for c in chunks],
        chunk_digits=[len(c) for c in chunks],
        expiry=say(_digits(expiry)),
        cvv=say(_digits(cvv)),
        cvv_digits=len(cvv),
        yes=say("yes"),
    )
