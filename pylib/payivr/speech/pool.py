"""The ESL process's decoding workers: a small pool of processes started once, each
loading its recognisers once (payivr.speech.worker), and the ``Recogniser`` port
the listen uses on top of them.

    pool = DecodingPool(config.services.esl.speech)   # at start-up
    utterance = pool.utterance(Grammar("en", 4))       # pinned to one worker
    utterance.feed(frame); await utterance.advance(); digits = await utterance.finish()

Why processes: pocketsphinx (and Vosk) hold the GIL while they decode, so a
decoding thread stopped the event loop, every call's ESL traffic, for as long as a
step ran, and the end of a listen waited for the GIL as well as for a core
(docs/dictation.md, "Figures").

An utterance stays on the worker it was opened on (its decoder holds the search);
audio goes out and digits come back over the worker's socket pair (kernel memory
only), read into buffers that are zeroed once used. The event loop only ever copies
bytes: sends and reads are asyncio socket operations.

A worker that dies (a crash in a decoder, killed) is replaced at once; each
utterance it served fails with :class:`DecodingFailed` (the listen ends as
"unclear", the caller is asked again), never hangs. A listen waits for its result
at most its deadline (payivr.speech.listener); a worker stuck in a decoder for
``STUCK_S`` is killed and replaced when the next listen starts. A worker that dies before it
is ready is not replaced (a missing library or model would only die again): its
languages are taken off, and those listens are keyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import payivr
from payivr.core.config_types import SpeechConfig
from payivr.core.secrets import SecretDigits
from payivr.core.speech_input import Grammar
from payivr.speech.audio import wipe
from payivr.speech.recognisers import languages_configured
from payivr.speech.wire import HEADER, Kind, WireError, message, parse_header

log = logging.getLogger("payivr.speech")

STOP_WAIT_S = 2.0  # how long a closing pool waits for a worker to exit before killing it
# A decoding step is at most about a second of CPU (8 s of audio at most per listen);
# a worker that has not answered one for this long is stuck in its decoder: it is
# killed and replaced, so a call's listens are bounded in time whatever the decoder does.
STUCK_S = 30.0


class DecodingFailed(Exception):
    """A decoding did not complete: its worker died or its decoder failed (the
    listen is unclear). The message never says more than that."""


class _Worker:
    """One worker process and the utterances pinned to it."""

    def __init__(self, number: int, process: subprocess.Popen[bytes], sock: socket.socket):
        self.number = number
        self.process = process
        self.sock = sock
        self.utterances: dict[int, PooledUtterance] = {}
        self.outbox: asyncio.Queue[bytearray] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.ready = False
        self.alive = True

    def stuck(self, now: float, limit_s: float) -> bool:
        """An answer awaited for longer than ``limit_s``."""
        return any(now - u.waiting_since > limit_s for u in self.utterances.values())


class DecodingPool:
    """``processes`` decoding workers for ``config``'s recognisers; the ``Recogniser``
    port of the ESL process (``languages``, ``utterance``)."""

    def __init__(self, config: SpeechConfig, *, stuck_s: float = STUCK_S) -> None:
        self._stuck_s = stuck_s
        self._config = json.dumps(
            {
                "pocketsphinx": config.pocketsphinx,
                "vosk_models": {lang: str(path) for lang, path in config.vosk_models.items()},
            }
        )
        self._languages = languages_configured(
            pocketsphinx=config.pocketsphinx, vosk_models=config.vosk_models
        )
        self._means: dict[str, str] = {}  # language -> running mean the last utterance left
        self._next_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._workers = [self._spawn(n) for n in range(config.decode_processes)]

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids (for operators and tests)."""
        return [w.process.pid for w in self._workers if w.alive]

    def languages(self) -> frozenset[str]:
        return self._languages

    def utterance(self, grammar: Grammar) -> PooledUtterance:
        """A decoding of one utterance on the least busy worker (call it from the
        event loop that will await it)."""
        if grammar.language not in self._languages:
            raise ValueError(f"no recogniser for {grammar.language!r}")
        self._attach()
        self._replace_stuck()
        worker = min(
            (w for w in self._workers if w.alive), key=lambda w: (not w.ready, len(w.utterances))
        )
        self._next_id = (self._next_id + 1) % (1 << 32)
        utterance = PooledUtterance(self, worker, self._next_id, grammar)
        worker.utterances[utterance.id] = utterance
        return utterance

    def close(self) -> None:
        """Stop the workers (closing its socket ends a worker's loop; one still
        loading its models has heard nothing and is killed)."""
        self._closed = True
        for worker in self._workers:
            if not worker.ready and worker.process.poll() is None:
                worker.process.kill()
            self._stop(worker)
        for worker in self._workers:
            try:
                worker.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    # -- the workers --------------------------------------------------------------

    def _spawn(self, number: int) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        # The worker imports payivr from where this process did (a venv, a checkout).
        package_root = str(Path(payivr.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-m", "payivr.speech.worker", str(theirs.fileno()), self._config],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        ours.setblocking(False)
        worker = _Worker(number, process, ours)
        if self._loop is not None:
            self._start_io(worker)
        return worker

    def _attach(self) -> None:
        """Start the workers' reader and writer tasks on the running loop (the first
        listen's, or a new one's: a pool outlives one ``asyncio.run`` in tests)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        for worker in self._workers:
            if worker.alive:
                self._start_io(worker)

    def _start_io(self, worker: _Worker) -> None:
        worker.outbox = asyncio.Queue()
        worker.tasks = [
            asyncio.ensure_future(self._write(worker)),
            asyncio.ensure_future(self._read(worker)),
        ]

    async def _write(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        if worker.outbox is None:
            return
        while True:
            outgoing = await worker.outbox.get()
            try:
                await loop.sock_sendall(worker.sock, outgoing)
            except OSError:
                return  # the reader sees the worker gone and replaces it
            finally:
                wipe(outgoing)

    async def _read(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        header = bytearray(HEADER.size)
        try:
            while True:
                if not await _fill(loop, worker.sock, header):
                    break
                kind, uid, argument, size = parse_header(header)
                payload = bytearray(size)
                if size and not await _fill(loop, worker.sock, payload):
                    break
                self._answer(worker, kind, uid, argument, payload)
        except (OSError, WireError):
            pass
        except asyncio.CancelledError:
            return
        self._lost(worker)

    def _answer(
        self, worker: _Worker, kind: Kind, uid: int, argument: int, payload: bytearray
    ) -> None:
        try:
            if kind is Kind.READY:
                worker.ready = True
            elif kind is Kind.MEAN:
                utterance = worker.utterances.get(uid)
                if utterance is not None:
                    self._means[utterance.grammar.language] = payload.decode("ascii")
            else:
                utterance = worker.utterances.get(uid)
                if utterance is not None:  # else discarded: its answer is dropped
                    utterance.answered(kind, argument, payload)
        finally:
            wipe(payload)

    def _replace_stuck(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.alive and worker.stuck(now, self._stuck_s):
                log.error("speech worker %d stuck in a decoding: killed", worker.number)
                self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        """The worker's socket closed: it died (or the pool is closing)."""
        if not worker.alive:
            return
        self._stop(worker)
        for utterance in list(worker.utterances.values()):
            utterance.lost()
        worker.utterances.clear()
        if self._closed:
            return
        code = worker.process.returncode
        if not worker.ready:
            log.error(
                "speech worker %d exited before it was ready (code %s): speech input off",
                worker.number,
                code,
            )
            self._languages = frozenset()
            return
        log.warning("speech worker %d exited (code %s): replaced", worker.number, code)
        index = self._workers.index(worker)
        self._workers[index] = self._spawn(worker.number)

    def _stop(self, worker: _Worker) -> None:
        worker.alive = False
        try:
            current = asyncio.current_task()
        except RuntimeError:  # closed from outside the loop
            current = None
        for task in worker.tasks:
            if task is not current:
                with contextlib.suppress(RuntimeError):  # its loop is closed already
                    task.cancel()
        worker.tasks = []
        with contextlib.suppress(OSError):
            worker.sock.close()
        if worker.process.poll() is None and not self._closed:
            worker.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(0 if self._closed else STOP_WAIT_S)

    def starting_mean(self, language: str) -> str:
        """The running mean the last utterance in ``language`` left ("" before it)."""
        return self._means.get(language, "")


class PooledUtterance:
    """One listen's decoding on its worker (the core ``Utterance`` port).

    ``finish`` may be called while an ``advance`` is still awaited: the worker takes
    the messages in order, so the end of the search follows the step without
    waiting for a round trip through the event loop."""

    def __init__(self, pool: DecodingPool, worker: _Worker, uid: int, grammar: Grammar) -> None:
        self.id = uid
        self.grammar = grammar
        self._pool = pool
        self._worker = worker
        self._pending = bytearray()
        self._opened = False
        self._closed = False
        self._failed = False
        # Requests sent and not answered yet, oldest first, with when they were sent
        # (the worker answers each in order).
        self._awaited: deque[tuple[asyncio.Future[SecretDigits | None], float]] = deque()
        self.cpu_s = 0.0  # decoding CPU the worker reported for this utterance
        self.cpu_at_end_s = 0.0  # of which for ``finish`` (after the end of speech)

    @property
    def waiting_since(self) -> float:
        """Monotonic time the oldest unanswered request was sent (inf: none)."""
        return self._awaited[0][1] if self._awaited else math.inf

    def feed(self, pcm: bytes) -> None:
        if not self._closed:
            self._pending += pcm

    async def advance(self) -> None:
        if self._awaited:
            raise RuntimeError("one decoding step at a time per utterance")
        block = self._take(closing=False)
        if block is not None:
            await self._request(Kind.AUDIO, block)

    async def finish(self) -> SecretDigits | None:
        block = self._take(closing=True)
        if block is None:
            return None
        try:
            return await self._request(Kind.FINISH, block)
        finally:
            self._worker.utterances.pop(self.id, None)

    def discard(self) -> None:
        if self._closed and not self._awaited:
            return
        self._closed = True
        wipe(self._pending)
        if self._opened and self._worker.alive:
            with contextlib.suppress(DecodingFailed):
                self._send(message(Kind.DISCARD, self.id))
        self._worker.utterances.pop(self.id, None)
        while self._awaited:
            self._settle(None)

    def _take(self, *, closing: bool) -> bytearray | None:
        if self._failed:
            raise DecodingFailed("the decoding worker was lost")
        if self._closed:
            return None
        self._closed = closing
        block, self._pending = self._pending, bytearray()
        return block

    async def _request(self, kind: Kind, block: bytearray) -> SecretDigits | None:
        try:
            if not self._worker.alive:
                self._failed = True
                raise DecodingFailed("the decoding worker was lost")
            if not self._opened:
                self._opened = True
                language = self.grammar.language
                opening = f"{language}\n{self._pool.starting_mean(language)}".encode("ascii")
                self._send(message(Kind.OPEN, self.id, self.grammar.length, opening))
            answer: asyncio.Future[SecretDigits | None] = asyncio.get_running_loop().create_future()
            self._awaited.append((answer, time.monotonic()))
            self._send(message(kind, self.id, 0, block))
        finally:
            wipe(block)
        return await answer

    def _send(self, outgoing: bytearray) -> None:
        if self._worker.outbox is None:
            raise DecodingFailed("the decoding pool is not running")
        self._worker.outbox.put_nowait(outgoing)

    def answered(self, kind: Kind, argument: int, payload: bytearray) -> None:
        """The worker's answer (the pool's reader, on the event loop)."""
        if kind is Kind.DECODED:
            self.cpu_s += argument / 1e6
            self._settle(None)
        elif kind is Kind.RESULT:
            self.cpu_s += argument / 1e6
            self.cpu_at_end_s = argument / 1e6
            self._settle(SecretDigits(payload) if payload else None)
        elif kind is Kind.FAILED:  # the worker dropped the utterance: nothing else comes
            self._worker.utterances.pop(self.id, None)
            self._fail(DecodingFailed("the decoder failed"))

    def lost(self) -> None:
        """The worker died: what is awaited fails, and so does what comes next."""
        self._fail(DecodingFailed("the decoding worker was lost"))

    def _fail(self, error: DecodingFailed) -> None:
        self._failed = True
        while self._awaited:
            self._settle(error)

    def _settle(self, outcome: SecretDigits | DecodingFailed | None) -> None:
        """The oldest request's answer."""
        answer = self._awaited.popleft()[0] if self._awaited else None
        if answer is None or answer.done():
            if isinstance(outcome, SecretDigits):
                outcome.wipe()  # nobody waits for it any more
            return
        if isinstance(outcome, DecodingFailed):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


async def _fill(loop: asyncio.AbstractEventLoop, sock: socket.socket, buffer: bytearray) -> bool:
    """Read exactly ``len(buffer)`` bytes into it; False when the peer closed."""
    view = memoryview(buffer)
    got = 0
    while got < len(buffer):
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            return False
        got += n
    return True
