"""Speech input over the synthetic corpus, per language and recogniser available.

    .venv/bin/python bench/dictation.py [--languages en] [--calls 6] [--vosk es=/models/es,...]

The corpus (tests/fixtures/speech/make_corpus.py, generated and cached on first use)
is said by ``--calls`` callers at once, each frame at its real 20 ms pace, through
the listen loop and the decoding thread pool the ESL application uses (2 threads,
its default ``decode_threads``). Each caller says one card after another (chunks,
expiry, security code); a chunk heard wrong is said once more (the repeat is the
same voice with fresh line noise: a synthetic voice says it identically). Per voice:

- chunks exact: utterances (chunks, expiries, codes) recognised exactly, first time;
- yes/no right: the read-back answers;
- cards right: whole cards (number, expiry, code) right with at most one repeat per
  chunk;
- after silence p50 / p99: from the caller's last voiced frame to the result. This
  is the wait a caller has: the endpointer's 500 ms of silence plus the next figure;
- after endpoint p50 / p99: from the endpointer's decision to the result (the
  decoding left, and waiting for a thread and a core on a loaded machine);
- decode CPU p50 / p99: the decoding's thread CPU time per utterance, and the part
  of it spent after the endpoint (what an idle core adds to the endpointer's wait);
- CPU s per card and calls per core (audio seconds per decoding CPU second);
- event loop stalls p99 / max: how late a 10 ms timer on the event loop fires.
  pocketsphinx's decoder holds the GIL while it works, so a decoding step in the
  worker thread stops the loop (every call's ESL traffic) for its duration.

Synthetic voices are not callers: these figures show that the pipeline works and
what it costs, not the accuracy a caller population will see.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "pylib")]

from payivr.core.plan import Collect, Field, Listen, SpeechHeard  # noqa: E402
from payivr.core.speech_input import Endpointing, Grammar, Recogniser  # noqa: E402
from payivr.speech.listener import Timing, listen  # noqa: E402
from tests.fixtures.speech.make_corpus import Item, corpus  # noqa: E402

FRAME = 320
LEAD = bytes(FRAME * 10)  # 200 ms before the caller speaks
TAIL = bytes(FRAME * 40)  # 800 ms after: lets the endpointer see the end
DECODE_THREADS = 2
# The endpointer's silence after the last voiced frame.
SILENCE_S = Endpointing().end_silence_ms / 1000


def with_noise(pcm: bytes, seed: str, level: int = 300) -> bytes:
    rng = random.Random(seed)
    samples = array.array("h", pcm)
    for i, v in enumerate(samples):
        samples[i] = max(-32768, min(32767, v + rng.randint(-level, level)))
    return samples.tobytes()


async def frames_of(pcm: bytes) -> AsyncIterator[bytes]:
    """The utterance at the pace a call streams it: one frame every 20 ms."""
    audio = LEAD + pcm + TAIL
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, i in enumerate(range(0, len(audio), FRAME)):
        delay = start + n * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield audio[i : i + FRAME]


class CpuClock:
    """Thread CPU time of each utterance's decoding steps, summed per utterance."""

    def __init__(self) -> None:
        self.total = 0.0
        self.after_endpoint = 0.0
        self._lock = threading.Lock()

    def timed(self, method: Any, *, at_end: bool) -> Any:
        def run(*args: Any) -> Any:
            cpu0 = time.thread_time()
            try:
                return method(*args)
            finally:
                spent = time.thread_time() - cpu0
                with self._lock:
                    self.total += spent
                    if at_end:
                        self.after_endpoint += spent

        return run


class TimedRecogniser:
    """The recogniser under test, its utterances' decoding steps timed in CPU."""

    def __init__(self, inner: Recogniser) -> None:
        self.inner = inner
        self.clock = CpuClock()

    def languages(self) -> frozenset[str]:
        return self.inner.languages()

    def utterance(self, grammar: Grammar) -> Any:
        utterance = self.inner.utterance(grammar)
        if hasattr(utterance, "advance"):
            utterance.advance = self.clock.timed(utterance.advance, at_end=False)
        utterance.finish = self.clock.timed(utterance.finish, at_end=True)
        return utterance


@dataclass
class Result:
    right: int = 0
    total: int = 0
    after_silence: list[float] = field(default_factory=list)
    after_endpoint: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    cpu_at_end: list[float] = field(default_factory=list)
    audio_s: float = 0.0


async def recognise(
    recogniser: Recogniser, pool: ThreadPoolExecutor, audio: bytes, language: str, length: int
) -> tuple[str | None, Timing | None, float, float]:
    """(digits or None, the listen's timing, decode CPU s, of which after the endpoint)."""
    keyed = Collect(Field.CARD_NUMBER, "x", 1, 19, 15000, 5000)
    command = Listen(Field.CARD_NUMBER, "x", length, 15000, keyed)
    timings: list[Timing] = []
    timed = TimedRecogniser(recogniser)
    event = await listen(command, language, frames_of(audio), timed, pool=pool, timings=timings)
    timing = timings[0] if timings else None
    cpu, at_end = timed.clock.total, timed.clock.after_endpoint
    if isinstance(event, SpeechHeard):
        text = event.digits.reveal()
        event.digits.wipe()
        return text, timing, cpu, at_end
    return None, timing, cpu, at_end


async def watch_loop(stalls: list[float]) -> None:
    """How late a 10 ms timer fires, each time (the loop's stalls)."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(0.01)
        stalls.append(max(0.0, loop.time() - before - 0.01))


def note(r: Result, timing: Timing | None, cpu: float, at_end: float) -> None:
    r.cpu.append(cpu)
    r.cpu_at_end.append(at_end)
    if timing is not None:
        after_endpoint = timing.result - timing.speech_end
        r.after_endpoint.append(after_endpoint)
        r.after_silence.append(after_endpoint + SILENCE_S)


async def bench_language(
    language: str, recogniser: Recogniser, root: Path, items: list[Item], calls: int
) -> list[str]:
    pool = ThreadPoolExecutor(DECODE_THREADS)
    chunks: dict[str, Result] = defaultdict(Result)
    yesno: dict[str, Result] = defaultdict(Result)
    cards: dict[str, Result] = defaultdict(Result)
    field_cpu: list[float] = []
    by_card: dict[tuple[str, int], list[Item]] = defaultdict(list)
    answers: list[Item] = []
    for item in items:
        if item.kind == "yesno":
            answers.append(item)
        else:
            by_card[(item.voice, item.card)].append(item)
    # Callers interleave voices, as calls from different phones would.
    work: asyncio.Queue[tuple[str, list[Item]]] = asyncio.Queue()
    for (voice, _card), parts in sorted(by_card.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        work.put_nowait((voice, parts))

    async def caller() -> None:
        while not work.empty():
            voice, parts = work.get_nowait()
            card_right = True
            card_cpu = 0.0
            for item in parts:
                audio = item.audio(root)
                length = len(item.digits)
                got, timing, cpu, at_end = await recognise(
                    recogniser, pool, audio, language, length
                )
                r = chunks[voice]
                r.total += 1
                r.right += got == item.digits
                note(r, timing, cpu, at_end)
                r.audio_s += len(audio) / 16000
                card_cpu += cpu
                if got != item.digits:  # read back wrong: "no", said once more
                    again = with_noise(audio, f"repeat-{item.path}", 150)
                    got, timing, cpu, at_end = await recognise(
                        recogniser, pool, again, language, length
                    )
                    note(r, timing, cpu, at_end)
                    r.audio_s += len(again) / 16000
                    card_cpu += cpu
                    card_right = card_right and got == item.digits
            field_cpu.append(card_cpu)
            c = cards[voice]
            c.total += 1
            c.right += card_right

    for item in answers:
        got, _timing, _cpu, _at_end = await recognise(
            recogniser, pool, item.audio(root), language, 0
        )
        y = yesno[item.voice]
        y.total += 1
        y.right += got == item.digits
    load0 = os.getloadavg()[0]
    stalls: list[float] = []
    ticker = asyncio.ensure_future(watch_loop(stalls))
    await asyncio.gather(*(caller() for _ in range(calls)))
    ticker.cancel()
    load1 = os.getloadavg()[0]
    pool.shutdown()
    lines = [
        f"## {language}: {calls} callers at once, "
        f"{DECODE_THREADS} decoding threads, load average {load0:.1f} -> {load1:.1f}",
        "",
        f"event loop stalls p99 / max: {_p99(stalls) * 1000:.0f} / {max(stalls) * 1000:.0f} ms"
        if stalls
        else "",
        "",
        "| voice | chunks exact | yes/no right | cards right (<= 1 repeat per chunk) "
        "| after silence p50 / p99 ms | after endpoint p50 / p99 ms "
        "| decode CPU p50 / p99 ms (after endpoint p50 / p99) | CPU s per card "
        "| calls per core |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    every = Result()
    for voice in sorted(chunks):
        r, y, c = chunks[voice], yesno[voice], cards[voice]
        every.after_silence += r.after_silence
        every.after_endpoint += r.after_endpoint
        every.cpu += r.cpu
        every.cpu_at_end += r.cpu_at_end
        lines.append(
            f"| {voice} | {r.right}/{r.total} ({100 * r.right / r.total:.0f}%) "
            f"| {y.right}/{y.total} | {c.right}/{c.total} ({100 * c.right / c.total:.0f}%) "
            f"| {_ms(r.after_silence)} | {_ms(r.after_endpoint)} "
            f"| {_ms(r.cpu)} ({_ms(r.cpu_at_end)}) "
            f"| {sum(r.cpu) / max(1, c.total):.2f} | {r.audio_s / max(1e-9, sum(r.cpu)):.0f} |"
        )
    right = sum(c.right for c in cards.values())
    total = sum(c.total for c in cards.values())
    audio_s = sum(r.audio_s for r in chunks.values())
    lines.append(
        f"| **all** | {sum(r.right for r in chunks.values())}/"
        f"{sum(r.total for r in chunks.values())} | "
        f"{sum(y.right for y in yesno.values())}/{sum(y.total for y in yesno.values())} | "
        f"{right}/{total} ({100 * right / max(1, total):.0f}%) "
        f"| {_ms(every.after_silence)} | {_ms(every.after_endpoint)} "
        f"| {_ms(every.cpu)} ({_ms(every.cpu_at_end)}) "
        f"| {statistics.mean(field_cpu):.2f} | {audio_s / max(1e-9, sum(every.cpu)):.0f} |"
    )
    return lines


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f} / {_p99(values) * 1000:.0f}"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="en")
    parser.add_argument("--calls", type=int, default=6, help="callers speaking at once")
    parser.add_argument("--vosk", default="", help="lang=/model/dir,... (operator models)")
    args = parser.parse_args(argv)
    languages = args.languages.split(",")
    vosk_models = dict(pair.split("=", 1) for pair in args.vosk.split(",") if pair)
    root, items = corpus(languages)
    out: list[str] = []
    for language in languages:
        mine = [i for i in items if i.language == language]
        backends: list[tuple[str, Recogniser]] = []
        if language == "en":
            from payivr.speech.pocketsphinx_recogniser import PocketsphinxRecogniser

            backends.append(("pocketsphinx", PocketsphinxRecogniser()))
        if language in vosk_models:
            from payivr.speech.vosk_recogniser import VoskRecogniser

            model = {language: Path(vosk_models[language])}
            backends.append(("vosk", VoskRecogniser(model)))
        if not backends:
            out += [f"## {language}", "", "skipped: no Vosk model given (--vosk)", ""]
            continue
        for name, recogniser in backends:
            lines = asyncio.run(bench_language(language, recogniser, root, mine, args.calls))
            out += [lines[0] + f" ({name})", *lines[1:], ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
