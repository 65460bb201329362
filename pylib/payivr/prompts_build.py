"""Build the IVR's prompt audio from the prompt texts (payivr/data/prompts/*.yaml).

`payivr prompts build` speaks every prompt of every language with espeak-ng and
converts it with sox to what FreeSWITCH plays without transcoding on a G.711 call:
8 kHz, mono, 16-bit signed PCM WAV, at `<prompts_dir>/<lang>/<prompt_id>.wav`. It also
speaks the currency names the ESL application plays (`currency-eur.wav`) and the
words FreeSWITCH's say module for the language plays for numbers (`digits/7.wav`,
`digits/hundred.wav`; `<prompts_dir>/<lang>` is the language's sound-prefix).

Recorded prompts take precedence. A manifest (`<prompts_dir>/.generated.json`) lists
the files this builder wrote, with a hash of their inputs and of their bytes. A WAV
at a prompt's path that is not in the manifest, or whose bytes no longer match it,
was put there by someone else (a studio recording): it is never overwritten. The
build is idempotent (unchanged inputs, nothing rewritten) and runs in parallel.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from payivr.core.prompts import LANGUAGES, load_prompts

MANIFEST = ".generated.json"
# espeak-ng voices per prompt language (espeak-ng --voices); override with --voice.
DEFAULT_VOICES: Mapping[str, str] = {"es": "es", "en": "en-gb", "pt": "pt", "nl": "nl"}
SPEED_WPM = 150  # a little slower than espeak-ng's 175: callers listen on a phone line
SAMPLE_RATE = 8000


def currency_names(language: str) -> dict[str, str]:
    """`currency-<code>` prompt ids and texts for a language (data/currency_names.yaml)."""
    from importlib import resources

    import yaml

    text = (resources.files("payivr") / "data" / "currency_names.yaml").read_text("utf-8")
    names = (yaml.safe_load(text) or {}).get(language, {})
    return {f"currency-{code.lower()}": str(name) for code, name in names.items()}


def say_sounds(language: str) -> dict[str, str]:
    """The files mod_say_<language> plays for numbers (data/say_sounds.yaml + digits)."""
    text = (resources.files("payivr") / "data" / "say_sounds.yaml").read_text("utf-8")
    words = (yaml.safe_load(text) or {}).get(language, {})
    numbers = [*range(20), *range(20, 100, 10)]
    sounds = {f"digits/{n}": str(n) for n in numbers}
    sounds.update({str(k): str(v) for k, v in words.items()})
    if language == "en":  # NAME_SPELLED (alphanumeric codes): ascii/<code>
        sounds.update({f"ascii/{ord(c)}": c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
    return sounds


def prompt_texts(language: str) -> dict[str, str]:
    """Everything to speak in a language: the prompt catalogue, currency names and the
    say module's number words."""
    return {**say_sounds(language), **currency_names(language), **load_prompts(language)}


class PromptBuildError(Exception):
    """A tool is missing or failed; the message says which and how to fix it."""


@dataclass
class BuildReport:
    """What a build did, by relative path (`en/greeting.wav`)."""

    generated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.generated)} generated, {len(self.unchanged)} unchanged, "
            f"{len(self.recorded)} recorded (kept), {len(self.removed)} stale removed"
        )


@dataclass(frozen=True)
class _Job:
    rel: str
    text: str
    voice: str
    key: str


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptBuildError(f"{name} not found: install it (apt-get install {package})")
    return path


def _engine_version(espeak: str) -> str:
    out = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_manifest(prompts_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((prompts_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return (
        {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}
    )


def _save_manifest(prompts_dir: Path, files: Mapping[str, Mapping[str, str]]) -> None:
    tmp = prompts_dir / (MANIFEST + ".tmp")
    tmp.write_text(
        json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1) + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, prompts_dir / MANIFEST)


def _synthesise(job: _Job, prompts_dir: Path, espeak: str, sox: str) -> str:
    """Speak one prompt and convert it; returns the new file's sha256."""
    target = prompts_dir / job.rel
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="payivr-prompt-") as tmp:
        raw = Path(tmp) / "raw.wav"
        out = Path(tmp) / "out.wav"
        # The text goes in on stdin: never through a shell, whatever it contains.
        subprocess.run(
            [espeak, "-v", job.voice, "-s", str(SPEED_WPM), "-w", str(raw)],
            input=job.text.encode("utf-8"),
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            [
                sox,
                str(raw),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(out),
                "gain",
                "-n",
                "-3",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        os.replace(
            out, target
        ) if out.stat().st_dev == target.parent.stat().st_dev else shutil.move(str(out), target)
    return _sha256_file(target)


def synthesise_text(text: str, language: str, target: Path) -> None:
    """Speak ``text`` in ``language`` into ``target``, as the prompts are built (8 kHz
    mono 16-bit WAV): for a flow's dynamic text (payivr.flows.speech)."""
    espeak = _tool("espeak-ng", "espeak-ng")
    sox = _tool("sox", "sox")
    voice = DEFAULT_VOICES.get(language, language)
    _synthesise(_Job(target.name, text, voice, ""), target.parent, espeak, sox)


def build_prompts(
    prompts_dir: Path,
    languages: Iterable[str] = LANGUAGES,
    voices: Mapping[str, str] | None = None,
    jobs: int | None = None,
) -> BuildReport:
    """Generate every missing or outdated prompt; keep recorded ones; see module doc."""
    espeak = _tool("espeak-ng", "espeak-ng")
    sox = _tool("sox", "sox")
    voice_of = {**DEFAULT_VOICES, **(voices or {})}
    engine = _engine_version(espeak)
    prompts_dir.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(prompts_dir)
    report = BuildReport()
    todo: list[_Job] = []
    wanted: set[str] = set()
    for lang in languages:
        voice = voice_of.get(lang, lang)
        for prompt_id, text in sorted(prompt_texts(lang).items()):
            rel = f"{lang}/{prompt_id}.wav"
            wanted.add(rel)
            key = hashlib.sha256(
                "\0".join((engine, voice, str(SPEED_WPM), str(SAMPLE_RATE), text)).encode()
            ).hexdigest()
            path = prompts_dir / rel
            entry = manifest.get(rel)
            if path.exists():
                if entry is None or entry.get("sha256") != _sha256_file(path):
                    # Not ours (or replaced since): a recorded prompt, which wins.
                    manifest.pop(rel, None)
                    report.recorded.append(rel)
                    continue
                if entry.get("key") == key:
                    report.unchanged.append(rel)
                    continue
            todo.append(_Job(rel, text, voice, key))
    for rel in sorted(set(manifest) - wanted):
        # A prompt that left the catalogue: remove the file only if it is still ours.
        path = prompts_dir / rel
        if path.exists() and _sha256_file(path) == manifest[rel].get("sha256"):
            path.unlink()
            report.removed.append(rel)
        manifest.pop(rel)
    workers = jobs or min(8, (os.cpu_count() or 2) * 2)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_synthesise, j, prompts_dir, espeak, sox): j for j in todo}
            for fut in concurrent.futures.as_completed(futures):
                job = futures[fut]
                try:
                    digest = fut.result()
                except subprocess.CalledProcessError as exc:
                    stderr = (exc.stderr or b"").decode("utf-8", "replace").strip()
                    raise PromptBuildError(
                        f"{job.rel}: {Path(str(exc.cmd[0])).name} failed: {stderr}"
                    ) from None
                manifest[job.rel] = {"key": job.key, "sha256": digest}
                report.generated.append(job.rel)
    finally:
        # Whatever finished is recorded, so a rerun after a failure resumes.
        _save_manifest(prompts_dir, manifest)
    for lst in (report.generated, report.unchanged, report.recorded, report.removed):
        lst.sort()
    return report
