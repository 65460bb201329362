"""The decoding workers: a worker lost mid-listen, core dumps, what they print."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from payivr.core.config_types import SpeechConfig
from payivr.core.plan import Collect, Field, Listen, SpeechHeard, SpeechUnclear
from payivr.core.speech_input import Grammar
from payivr.speech.listener import listen
from payivr.speech.pool import DecodingFailed, DecodingPool
from tests.speech.corpus import english, first
from tests.speech.pool import FRAME, decoding_pool, keep_utterances, paced

KEYED = Collect(Field.CARD_NUMBER, "enter-card-number", 1, 19, 15000, 5000)
COMMAND = Listen(Field.CARD_NUMBER, "say-card-number", 4, 2000, KEYED)
REPO = Path(__file__).resolve().parents[2]


def chunk_audio() -> bytes:
    root, items = english()
    return first(items, voice="flite-rms-95", kind="chunk", card=0, chunk=0).audio(root)


async def wait_ready(pool: DecodingPool) -> None:
    pool.utterance(Grammar("en", 0)).discard()  # starts the pool's I/O on this loop
    for _ in range(1000):
        if all(w.ready for w in pool._workers):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the workers did not get ready")


def test_a_worker_killed_mid_listen_makes_it_unclear_and_is_replaced() -> None:
    async def run() -> None:
        with decoding_pool(1) as pool:
            await wait_ready(pool)
            (killed,) = pool.pids
            kept = keep_utterances(pool)

            async def killing(audio: bytes) -> AsyncIterator[bytes]:
                n = 0
                async for frame in paced(audio):
                    n += 1
                    if n == 40:  # mid-chunk, decoding steps done and in flight
                        assert kept[0].cpu_s > 0
                        os.kill(killed, signal.SIGKILL)
                    yield frame

            audio = bytes(FRAME * 10) + chunk_audio() + bytes(FRAME * 30)
            event = await asyncio.wait_for(listen(COMMAND, "en", killing(audio), pool), 20)
            assert event == SpeechUnclear(Field.CARD_NUMBER)
            assert len(kept[0]._pending) == 0
            # A fresh worker took its place and hears the next listen.
            (fresh,) = pool.pids
            assert fresh != killed
            again = paced(bytes(FRAME * 10), chunk_audio(), bytes(FRAME * 30))
            event = await asyncio.wait_for(listen(COMMAND, "en", again, pool), 30)
            assert isinstance(event, SpeechHeard) and event.digits.reveal() == "4111"
            event.digits.wipe()

    asyncio.run(run())


def test_a_worker_stuck_in_a_decoding_misses_the_deadline_then_is_replaced() -> None:
    async def run() -> None:
        with decoding_pool(1, stuck_s=1.0) as pool:
            await wait_ready(pool)
            (stuck,) = pool.pids
            os.kill(stuck, signal.SIGSTOP)  # as a decoder that never returns
            audio = paced(bytes(FRAME * 10), chunk_audio(), bytes(FRAME * 30))
            event = await listen(COMMAND, "en", audio, pool, decode_timeout_s=0.5)
            assert event == SpeechUnclear(Field.CARD_NUMBER)
            await asyncio.sleep(1.0)
            # The next listen finds the worker stuck: killed, and a fresh one decodes.
            again = paced(bytes(FRAME * 10), chunk_audio(), bytes(FRAME * 30))
            event = await asyncio.wait_for(listen(COMMAND, "en", again, pool), 30)
            assert pool.pids != [stuck]
            assert isinstance(event, SpeechHeard) and event.digits.reveal() == "4111"
            event.digits.wipe()

    asyncio.run(run())


def test_workers_are_not_dumpable_and_have_no_core_limit() -> None:
    with decoding_pool(2) as pool:
        pids = pool.pids
        assert len(pids) == 2
        for pid in pids:
            for _ in range(500):  # the worker sets both first thing
                limits = Path(f"/proc/{pid}/limits").read_text()
                core = next(line for line in limits.splitlines() if "core file" in line)
                if core.split()[4:6] == ["0", "0"]:
                    break
                asyncio.run(asyncio.sleep(0.01))
            assert core.split()[4:6] == ["0", "0"], core


def test_forbid_core_dumps_makes_the_process_non_dumpable() -> None:
    script = (
        "import ctypes, resource\n"
        "from payivr.speech.worker import forbid_core_dumps\n"
        "libc = ctypes.CDLL(None)\n"
        "before = libc.prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
        "forbid_core_dumps()\n"
        "print(before, libc.prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "pylib")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True, env=env
    )
    assert done.stdout.split() == [b"1", b"0", b"(0,", b"0)"], done.stdout


STDERR_SCRIPT = """
import asyncio, os, signal, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/pylib"]
from payivr.core.config_types import SpeechConfig
from payivr.core.plan import Collect, Field, Listen, SpeechHeard
from payivr.core.config_types import SpeechConfig
from payivr.core.speech_input import Grammar
from payivr.speech.listener import listen
from payivr.speech.pool import DecodingFailed, DecodingPool
from tests.speech.corpus import english
from tests.speech.pool import paced

async def main():
    root, items = english()
    keyed = Collect(Field.CARD_NUMBER, "x", 1, 19, 15000, 5000)
    pool = DecodingPool(SpeechConfig(decode_processes=2))
    heard = 0
    said = [i for i in items if i.voice.startswith("flite-kal") and not i.noisy][:6]
    for item in said:
        length = 0 if item.kind == "yesno" else len(item.digits)
        command = Listen(Field.CARD_NUMBER, "x", length, 2000, keyed)
        frames = paced(bytes(3200), item.audio(root), bytes(320 * 30))
        event = await listen(command, "en", frames, pool)
        if isinstance(event, SpeechHeard):
            heard += event.digits.reveal() == item.digits
            event.digits.wipe()
    # A decoder failure (a language no worker has) and a lost worker, on the way.
    utterance = pool.utterance(Grammar("en", 4))
    pool._languages = frozenset({"en", "xx"})
    broken = pool.utterance(Grammar("xx", 4))
    broken.feed(bytes(3200))
    try:
        await broken.finish()
    except Exception as exc:
        print(type(exc).__name__, exc, file=sys.stderr)
    utterance.feed(said[0].audio(root))
    os.kill(utterance._worker.process.pid, signal.SIGKILL)
    try:
        await utterance.finish()
    except Exception as exc:
        print(type(exc).__name__, exc, file=sys.stderr)
    pool.close()
    print("heard", heard, len(said))

asyncio.run(main())
"""


def test_nothing_the_workers_hear_reaches_stderr() -> None:
    """The workers share the ESL process's stderr: decodings, a decoder failure and
    a killed worker print no digit and no digit word there."""
    _root, items = english()
    said = [i for i in items if i.voice.startswith("flite-kal") and not i.noisy][:6]
    done = subprocess.run(
        [sys.executable, "-c", STDERR_SCRIPT, str(REPO)],
        capture_output=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    heard, right, total = done.stdout.split()
    assert heard == b"heard" and int(right) >= 4 and int(total) == 6, done.stdout
    err = done.stderr.decode("utf-8", "replace")
    # The failure and the loss were reported (so stderr is really captured) ...
    assert "DecodingFailed the decoder failed" in err and "KeyError in a decoding" in err
    assert "DecodingFailed the decoding worker was lost" in err
    # ... and nothing of what was said.
    words = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight",
             "nine", "yes", "no ")  # fmt: skip
    for item in said:
        assert item.digits not in err.replace(str(os.getpid()), ""), item.kind
    lowered = err.lower()
    assert [w for w in words if w in lowered] == [], err


def test_a_worker_that_cannot_load_its_recogniser_switches_speech_off(tmp_path: Path) -> None:
    """A Vosk model that does not load (here: no model in the directory) kills the
    worker before it is ready: not restarted in a loop, the language is taken off
    (calls are keyed) and the listen that met it is unclear."""

    async def run() -> None:
        config = SpeechConfig(pocketsphinx=False, vosk_models={"es": tmp_path}, decode_processes=1)
        pool = DecodingPool(config)
        try:
            assert pool.languages() == {"es"}
            (pid,) = pool.pids
            utterance = pool.utterance(Grammar("es", 4))
            utterance.feed(bytes(3200))
            with pytest.raises(DecodingFailed):
                await asyncio.wait_for(utterance.finish(), 60)
            assert pool.languages() == frozenset() and pool.pids == []
            assert not Path(f"/proc/{pid}").exists()
        finally:
            pool.close()

    asyncio.run(run())
