"""The audio flows need, built by the project (FreeSWITCH's sound packs are not
installed): each flow's prompts spoken by espeak-ng, and the queues' music on hold
synthesised by sox.

- Prompts: ``<prompts_dir>/<lang>/flows/<flow>/<name>.wav`` for every text of the
  flow file's ``prompts:``, 8 kHz mono 16-bit like payivr's own prompts. A file
  already there is kept (a studio recording wins) unless ``force``.
- Music on hold: ``<prompts_dir>/music/<name>.wav``, a slow loop of soft chords
  (C, A minor, F, G), 32 seconds; mod_fifo plays it in a loop while a caller waits.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from payivr.core.flow import Flow
from payivr.prompts_build import SAMPLE_RATE, PromptBuildError, synthesise_text

# Chords of the music on hold (Hz): C major, A minor, F major, G major.
CHORDS: tuple[tuple[float, float, float], ...] = (
    (261.63, 329.63, 392.00),
    (220.00, 261.63, 329.63),
    (174.61, 220.00, 261.63),
    (196.00, 246.94, 293.66),
)
CHORD_S = 4
ROUNDS = 2


@dataclass
class MediaReport:
    generated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def flow_media(flows: Iterable[Flow], prompts_dir: Path, *, force: bool = False) -> MediaReport:
    """Every flow's prompts and every queue's music (see the module's docstring)."""
    report = MediaReport()
    music: set[str] = set()
    for flow in flows:
        for name, texts in sorted(flow.prompts.items()):
            for language, text in sorted(texts.items()):
                target = prompts_dir / language / "flows" / flow.name / f"{name}.wav"
                rel = str(target.relative_to(prompts_dir))
                if target.exists() and not force:
                    report.kept.append(rel)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    synthesise_text(text, language, target)
                except subprocess.CalledProcessError as exc:
                    raise PromptBuildError(f"{rel}: {exc.cmd[0]} failed") from None
                report.generated.append(rel)
        music |= {str(a.music) for a in flow.activities.values() if hasattr(a, "music")}
    for name in sorted(music):
        target = prompts_dir / "music" / f"{name}.wav"
        rel = str(target.relative_to(prompts_dir))
        if target.exists() and not force:
            report.kept.append(rel)
            continue
        build_music(target)
        report.generated.append(rel)
    return report


def build_music(target: Path) -> None:
    """A soft chord loop, 8 kHz mono 16-bit, synthesised with sox."""
    sox = shutil.which("sox")
    if sox is None:
        raise PromptBuildError("sox not found: install it (apt-get install sox)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="payivr-moh-") as tmp:
        parts = []
        for i, chord in enumerate(CHORDS * ROUNDS):
            part = Path(tmp) / f"{i:02d}.wav"
            tones = [arg for hz in chord for arg in ("sine", f"{hz}")]
            subprocess.run(
                [sox, "-n", "-r", str(SAMPLE_RATE), "-c", str(len(chord)), str(part),
                 "synth", str(CHORD_S), *tones, "fade", "q", "0.4", str(CHORD_S), "0.8"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            parts.append(str(part))
        out = Path(tmp) / "moh.wav"
        subprocess.run(
            [sox, *parts, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
             str(out), "remix", "-", "gain", "-n", "-9"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.move(str(out), target)
