"""A decoding worker process: ``python -m payivr.speech.worker FD CONFIG_JSON``.

Started by :class:`payivr.speech.pool.DecodingPool`, never by hand. It loads the
recognisers once (``CONFIG_JSON``: ``{"pocketsphinx": bool, "vosk_models": {lang:
dir}}``), then serves the utterances the ESL process pins to it over the socket
``FD`` (payivr.speech.wire), one message at a time: pocketsphinx and Vosk hold the
GIL while they decode, and here that stops nobody's event loop.

PCI: the process is made non-dumpable and its core size limit zero before any audio
arrives; every payload buffer is zeroed once handled; the recognisers' logging is
silenced as in any payivr process (payivr.speech.quiet); a failure is answered
with FAILED and its exception's type only, never its text. The worker exits when
the ESL process closes its end (or dies).
"""

from __future__ import annotations

import ctypes
import json
import resource
import socket
import sys
import time
from pathlib import Path

from payivr.core.speech_input import Grammar
from payivr.speech.audio import wipe
from payivr.speech.recognisers import Backend, build_backends
from payivr.speech.utterance import StreamingUtterance
from payivr.speech.wire import Kind, WireError, message, receive

PR_SET_DUMPABLE = 4  # linux/prctl.h


def forbid_core_dumps() -> None:
    """No core dump of this process, and no ptrace or /proc/<pid>/mem read of it by
    another process of the same user: audio and digits live in its memory.

    RLIMIT_CORE 0 is what payivr's systemd units set for the ESL process
    (``LimitCORE=0``) and what the workers inherit there; it is set here as well so
    that it holds however the ESL process was started. PR_SET_DUMPABLE 0 also stops
    a core pipe handler (systemd-coredump, apport) from being given the memory."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def serve(sock: socket.socket, backends: dict[str, Backend]) -> None:
    """Answer the ESL process's messages until it closes the socket."""
    utterances: dict[int, tuple[Backend, StreamingUtterance]] = {}
    while True:
        received = receive(sock)
        if received is None:
            break
        kind, uid, argument, payload = received
        try:
            _handle(sock, backends, utterances, kind, uid, argument, payload)
        except Exception as exc:  # one utterance's failure; the worker carries on
            failed = utterances.pop(uid, None)
            if failed is not None:
                failed[1].discard()
            # The type only: a decoder's message might quote what it was given.
            print(f"payivr speech worker: {type(exc).__name__} in a decoding", file=sys.stderr)
            sock.sendall(message(Kind.FAILED, uid))
        finally:
            wipe(payload)
    for _backend, left in utterances.values():
        left.discard()


def _handle(
    sock: socket.socket,
    backends: dict[str, Backend],
    utterances: dict[int, tuple[Backend, StreamingUtterance]],
    kind: Kind,
    uid: int,
    argument: int,
    payload: bytearray,
) -> None:
    if kind is Kind.OPEN:
        language, _, mean = payload.decode("ascii").partition("\n")
        backend = backends[language]
        if mean:
            backend.start_from_mean(mean)
        utterances[uid] = (backend, backend.utterance(Grammar(language, argument)))
    elif kind is Kind.AUDIO:
        cpu0 = time.thread_time()
        _backend, utterance = utterances[uid]
        utterance.feed(payload)
        utterance.advance()
        sock.sendall(message(Kind.DECODED, uid, _micros(time.thread_time() - cpu0)))
    elif kind is Kind.FINISH:
        cpu0 = time.thread_time()
        backend, utterance = utterances.pop(uid)
        utterance.feed(payload)
        digits = utterance.finish()
        mean = backend.running_mean()
        if mean:
            sock.sendall(message(Kind.MEAN, uid, payload=mean.encode("ascii")))
        heard = bytearray()
        if digits is not None:
            digits.copy_to(heard)
            digits.wipe()
        answer = message(Kind.RESULT, uid, _micros(time.thread_time() - cpu0), heard)
        wipe(heard)
        try:
            sock.sendall(answer)
        finally:
            wipe(answer)
    elif kind is Kind.DISCARD:
        dropped = utterances.pop(uid, None)
        if dropped is not None:
            dropped[1].discard()
    else:
        raise ValueError("not a request")


def _micros(seconds: float) -> int:
    return max(0, min(0xFFFFFFFF, round(seconds * 1e6)))


def main(argv: list[str]) -> int:
    forbid_core_dumps()
    fd, config = int(argv[0]), json.loads(argv[1])
    sock = socket.socket(fileno=fd)
    # A recogniser that cannot load ends the process before READY: the pool then
    # switches speech input off (the ESL process checked the libraries already).
    backends = build_backends(
        pocketsphinx=bool(config["pocketsphinx"]),
        vosk_models={lang: Path(path) for lang, path in config["vosk_models"].items()},
    )
    try:
        sock.sendall(message(Kind.READY, 0, payload=",".join(sorted(backends)).encode("ascii")))
        serve(sock, backends)
    except (ConnectionError, WireError):  # the ESL process closed its end mid-message
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
