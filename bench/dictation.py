"""Speech input over the synthetic corpus, per language and recogniser available.

    .venv/bin/python bench/dictation.py [--languages en] [--vosk es=/models/es,...]

For each voice of the corpus (tests/fixtures/speech/make_corpus.py, generated and
cached on first use):

- chunk exact-match: the share of utterances (card chunks, expiries, security codes)
  recognised exactly, first time;
- yes/no right: the read-back answers;
- cards right: the share of whole card numbers (with expiry and code) that end
  right when each chunk may be said once more after a wrong read-back (the repeat is
  the same voice with fresh line noise; a synthetic voice says it identically);
- latency: from the end of speech, as the endpointer declares it (500 ms after the
  last voiced frame), to the result, p50/p99: frames are fed as fast as the listen
  takes them, through the same listen loop and worker thread the calls use; on a
  loaded machine this is mostly waiting for a core, so the decoding's own CPU time
  per utterance (p50/p99) is shown too: the latency on an idle core;
- CPU seconds per field (process time of the decoding) and the calls listening at
  once one core sustains (audio seconds per CPU second).

Synthetic voices are not callers: these figures show that the pipeline works and
what it costs, not the accuracy a caller population will see.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "pylib")]

from payivr.core.plan import Collect, Field, Listen, SpeechHeard  # noqa: E402
from payivr.core.speech_input import Recogniser  # noqa: E402
from payivr.speech.listener import Timing, listen  # noqa: E402
from tests.fixtures.speech.make_corpus import Item, corpus  # noqa: E402

SILENCE_TAIL = bytes(320 * 40)  # 800 ms: lets the endpointer see the end


def with_noise(pcm: bytes, seed: str, level: int = 300) -> bytes:
    rng = random.Random(seed)
    samples = array.array("h", pcm)
    for i, v in enumerate(samples):
        samples[i] = max(-32768, min(32767, v + rng.randint(-level, level)))
    return samples.tobytes()


async def frames_of(pcm: bytes) -> AsyncIterator[bytes]:
    audio = bytes(320 * 10) + pcm + SILENCE_TAIL
    for i in range(0, len(audio), 320):
        yield audio[i : i + 320]


class Result:
    def __init__(self) -> None:
        self.right = 0
        self.total = 0
        self.latencies: list[float] = []
        self.cpu: list[float] = []
        self.audio_s = 0.0


async def recognise(
    recogniser: Recogniser, pool: ThreadPoolExecutor, item_audio: bytes, language: str, length: int
) -> tuple[str | None, float, float]:
    """(digits or None, end-of-speech-to-result seconds, CPU seconds)."""
    keyed = Collect(Field.CARD_NUMBER, "x", 1, 19, 15000, 5000)
    command = Listen(Field.CARD_NUMBER, "x", length, 15000, keyed)
    timings: list[Timing] = []
    cpu0 = time.process_time()
    event = await listen(
        command, language, frames_of(item_audio), recogniser, pool=pool, timings=timings
    )
    cpu = time.process_time() - cpu0
    latency = timings[0].result - timings[0].speech_end if timings else 0.0
    if isinstance(event, SpeechHeard):
        text = event.digits.reveal()
        event.digits.wipe()
        return text, latency, cpu
    return None, latency, cpu


async def bench_language(
    language: str, backend: str, recogniser: Recogniser, root: Path, items: list[Item]
) -> list[str]:
    pool = ThreadPoolExecutor(1)
    chunks: dict[str, Result] = defaultdict(Result)
    yesno: dict[str, Result] = defaultdict(Result)
    cards: dict[str, Result] = defaultdict(Result)
    field_cpu: list[float] = []
    by_card: dict[tuple[str, int], list[Item]] = defaultdict(list)
    for item in items:
        if item.kind != "yesno":
            by_card[(item.voice, item.card)].append(item)
        else:
            audio = item.audio(root)
            got, lat, cpu = await recognise(recogniser, pool, audio, language, 0)
            r = yesno[item.voice]
            r.total += 1
            r.right += got == item.digits
    for (voice, _card), parts in sorted(by_card.items()):
        card_right = True
        card_cpu = 0.0
        for item in parts:
            audio = item.audio(root)
            got, lat, cpu = await recognise(recogniser, pool, audio, language, len(item.digits))
            r = chunks[voice]
            r.total += 1
            r.right += got == item.digits
            r.latencies.append(lat)
            r.cpu.append(cpu)
            r.audio_s += len(audio) / 16000
            card_cpu += cpu
            if got != item.digits:  # read back wrong: "no", said once more
                again = with_noise(audio, f"repeat-{item.path}", 150)
                got, lat, cpu = await recognise(recogniser, pool, again, language, len(item.digits))
                r.latencies.append(lat)
                card_cpu += cpu
                card_right = card_right and got == item.digits
        field_cpu.append(card_cpu)
        c = cards[voice]
        c.total += 1
        c.right += card_right
    pool.shutdown()
    lines = [f"## {language} / {backend}", ""]
    lines.append(
        "| voice | chunks exact | yes/no right | cards right (<= 1 repeat per chunk) "
        "| latency p50 / p99 ms | decode CPU p50 / p99 ms | CPU s per card | calls per core |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    every_latency: list[float] = []
    every_cpu: list[float] = []
    for voice in sorted(chunks):
        r, y, c = chunks[voice], yesno[voice], cards[voice]
        every_latency += r.latencies
        every_cpu += r.cpu
        p50 = statistics.median(r.latencies) * 1000
        p99 = _p99(r.latencies) * 1000
        cpu_card = sum(r.cpu) / max(1, c.total)
        per_core = r.audio_s / max(1e-9, sum(r.cpu))
        lines.append(
            f"| {voice} | {r.right}/{r.total} ({100 * r.right / r.total:.0f}%) "
            f"| {y.right}/{y.total} | {c.right}/{c.total} ({100 * c.right / c.total:.0f}%) "
            f"| {p50:.0f} / {p99:.0f} "
            f"| {statistics.median(r.cpu) * 1000:.0f} / {_p99(r.cpu) * 1000:.0f} "
            f"| {cpu_card:.2f} | {per_core:.0f} |"
        )
    right = sum(c.right for c in cards.values())
    total = sum(c.total for c in cards.values())
    lines.append(
        f"| **all** | {sum(r.right for r in chunks.values())}/"
        f"{sum(r.total for r in chunks.values())} | "
        f"{sum(y.right for y in yesno.values())}/{sum(y.total for y in yesno.values())} | "
        f"{right}/{total} ({100 * right / max(1, total):.0f}%) | "
        f"{statistics.median(every_latency) * 1000:.0f} / {_p99(every_latency) * 1000:.0f} "
        f"| {statistics.median(every_cpu) * 1000:.0f} / {_p99(every_cpu) * 1000:.0f} "
        f"| {statistics.mean(field_cpu):.2f} | |"
    )
    return lines


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="en")
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

            backends.append(("pocketsphinx", PocketsphinxRecogniser(max_decoders=1)))
        if language in vosk_models:
            from payivr.speech.vosk_recogniser import VoskRecogniser

            model = {language: Path(vosk_models[language])}
            backends.append(("vosk", VoskRecogniser(model)))
        if not backends:
            out += [f"## {language}", "", "skipped: no Vosk model given (--vosk)", ""]
            continue
        for name, recogniser in backends:
            out += [*asyncio.run(bench_language(language, name, recogniser, root, mine)), ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
