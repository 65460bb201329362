"""pocketsphinx on the synthetic corpus: digits right, results secret, stderr silent."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from payivr.core.speech_input import Grammar
from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser, jsgf
from tests.speech.corpus import english, first


def recognise(recogniser: PocketsphinxRecogniser, pcm: bytes, length: int) -> str | None:
    utterance = recogniser.utterance(Grammar("en", length))
    utterance.feed(pcm)
    digits = utterance.finish()
    if digits is None:
        return None
    text = digits.reveal()
    digits.wipe()
    return text


def test_grammar_allows_exactly_the_digits_asked_for() -> None:
    text = jsgf(Grammar("en", 3))
    assert "public <said> = <w> <w> <w>;" in text
    assert "nine" in text and "yes" not in text
    assert "public <said> = <w>;" in jsgf(Grammar("en", 0))


def test_flite_voices_are_recognised_chunk_by_chunk() -> None:
    root, items = english()
    recogniser = PocketsphinxRecogniser()
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item in items:
        if not item.voice.startswith("flite-") or item.noisy:
            continue
        length = 0 if item.kind == "yesno" else len(item.digits)
        total[item.voice] += 1
        right[item.voice] += recognise(recogniser, item.audio(root), length) == item.digits
    assert total, "no flite voice in the corpus (is flite installed? make apt)"
    for voice, count in total.items():
        # Measured 100% on kal and rms, ~90% on slt (bench/dictation.py); the bound
        # leaves room for other builds of the model, not for a broken pipeline.
        assert right[voice] / count >= 0.8, (voice, right[voice], count)


def test_audio_buffer_is_zeroed_after_decoding() -> None:
    root, items = english()
    item = first(items, kind="chunk", voice="flite-kal-100", noisy=False)
    recogniser = PocketsphinxRecogniser()
    utterance = recogniser.utterance(Grammar("en", 4))
    utterance.feed(item.audio(root))
    buffer = utterance._pending
    assert len(buffer) > 0
    utterance.finish()
    assert len(buffer) == 0


def test_decoder_prints_nothing_on_stderr() -> None:
    """pocketsphinx logs hypotheses at INFO on the C stderr unless silenced."""
    root, items = english()
    item = first(items, kind="chunk", card=0, chunk=0, voice="flite-kal-100")
    script = (
        "import sys\n"
        "from payivr.core.speech_input import Grammar\n"
        "from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser\n"
        "r = PocketsphinxRecogniser()\n"
        "u = r.utterance(Grammar('en', 4))\n"
        "u.feed(sys.stdin.buffer.read())\n"
        "d = u.finish()\n"
        "print('heard' if d is not None else 'nothing')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=item.audio(root),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == b"heard"
    assert done.stderr == b"", done.stderr[:200]


def test_unsilenced_pocketsphinx_would_print_what_it_heard() -> None:
    """The control for the test above: the same decoder at INFO does print."""
    script = (
        "import sys, pocketsphinx as ps\n"
        "m = ps.get_model_path()\n"
        "d = ps.Decoder(hmm=m+'/en-us/en-us', dict=m+'/en-us/cmudict-en-us.dict', lm=None,"
        " loglevel='INFO')\n"
        "d.add_jsgf_string('g', '#JSGF V1.0;\\ngrammar g;\\npublic <s> = <w> <w> <w> <w>;\\n"
        "<w> = one | four;\\n')\n"
        "d.activate_search('g')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    assert b"INFO" in done.stderr
