"""The decoding worker's loop (payivr.speech.worker.serve), run in this process on a
socket pair: its answers, and every buffer it was handed zeroed once used."""

from __future__ import annotations

import socket
import threading

import pytest

from payivr.speech import worker
from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser
from payivr.speech.wire import Kind, message, receive
from tests.speech.corpus import english, first


def test_the_worker_answers_and_zeroes_what_it_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    root, items = english()
    audio = first(items, voice="flite-rms-95", kind="chunk", card=0, chunk=0).audio(root)
    payloads: list[bytearray] = []
    received = worker.receive

    def recording(sock: socket.socket):  # type: ignore[no-untyped-def]
        got = received(sock)
        if got is not None:
            payloads.append(got[3])
        return got

    monkeypatch.setattr(worker, "receive", recording)
    ours, theirs = socket.socketpair()
    serving = threading.Thread(target=worker.serve, args=(theirs, {"en": PocketsphinxRecogniser()}))
    serving.start()
    try:
        ours.sendall(message(Kind.OPEN, 7, 4, b"en\n"))
        half = len(audio) // 2 // 320 * 320
        ours.sendall(message(Kind.AUDIO, 7, 0, audio[:half]))
        kind, uid, cpu_us, _ = receive(ours) or (None, 0, 0, b"")
        assert (kind, uid) == (Kind.DECODED, 7) and cpu_us > 0
        ours.sendall(message(Kind.FINISH, 7, 0, audio[half:] + bytes(320 * 30)))
        kind, uid, _, mean = receive(ours) or (None, 0, 0, b"")
        assert (kind, uid) == (Kind.MEAN, 7) and len(mean.split(b",")) == 13
        kind, uid, _, digits = receive(ours) or (None, 0, 0, b"")
        assert (kind, uid, bytes(digits)) == (Kind.RESULT, 7, b"4111")
        # An utterance it does not have: FAILED, with no text.
        ours.sendall(message(Kind.AUDIO, 8, 0, audio[:320]))
        assert receive(ours) == (Kind.FAILED, 8, 0, bytearray())
    finally:
        ours.close()
        serving.join(10)
    assert not serving.is_alive()
    assert len(payloads) == 4 and all(len(p) == 0 for p in payloads)
