"""`payivr prompts build`: real espeak-ng and sox, into a temporary prompts directory."""

from __future__ import annotations

import array
import json
import shutil
import wave
from pathlib import Path

import pytest

from payivr.core.prompts import PROMPT_IDS
from payivr.prompts_build import MANIFEST, PromptBuildError, build_prompts, prompt_texts

pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox are needed (apt-get install espeak-ng sox)",
)


IDS = set(prompt_texts("en"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    report = build_prompts(out, ["en"])
    assert len(report.generated) == len(IDS)
    return out


@pytest.fixture()
def prompts(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "prompts"
    shutil.copytree(built, copy)
    return copy


def write_wav(path: Path, seconds: float = 0.2) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * int(8000 * seconds))
    return path.read_bytes()


def test_every_prompt_is_an_8khz_mono_16bit_wav_with_speech(built: Path) -> None:
    # the whole catalogue, plus the currency names the ESL application plays
    assert PROMPT_IDS < IDS and {"currency-eur", "currency-usd", "currency-gbp"} < IDS
    # and the words mod_say_en plays for amounts and codes (numbers, iterated digits)
    assert {"digits/0", "digits/19", "digits/90", "digits/hundred", "digits/thousand"} < IDS
    for prompt_id in IDS:
        with wave.open(str(built / "en" / f"{prompt_id}.wav"), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            frames = w.readframes(w.getnframes())
        # said something: a sentence for a prompt, at least a syllable for a say word
        assert len(frames) / 2 / 8000 > (0.4 if prompt_id in PROMPT_IDS else 0.1), prompt_id
        samples = array.array("h", frames)
        peak = max(abs(min(samples)), max(samples))
        assert peak > 3000, prompt_id  # normalised, not silence


def test_second_build_changes_nothing(prompts: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in prompts.rglob("*.wav")}
    report = build_prompts(prompts, ["en"])
    assert report.generated == [] and len(report.unchanged) == len(IDS)
    assert {p: p.stat().st_mtime_ns for p in prompts.rglob("*.wav")} == before


def test_a_recorded_prompt_is_never_overwritten(prompts: Path) -> None:
    # A studio recording dropped in place of a generated file (or present before the
    # first build: either way it is not in the manifest with its bytes).
    recorded = write_wav(prompts / "en" / "greeting.wav")
    report = build_prompts(prompts, ["en"])
    assert report.recorded == ["en/greeting.wav"] and report.generated == []
    assert (prompts / "en" / "greeting.wav").read_bytes() == recorded
    manifest = json.loads((prompts / MANIFEST).read_text())["files"]
    assert "en/greeting.wav" not in manifest
    # still kept on the next build, now that it is out of the manifest
    assert build_prompts(prompts, ["en"]).recorded == ["en/greeting.wav"]
    assert (prompts / "en" / "greeting.wav").read_bytes() == recorded


def test_changed_inputs_regenerate_and_stale_files_go(prompts: Path) -> None:
    manifest_path = prompts / MANIFEST
    data = json.loads(manifest_path.read_text())
    data["files"]["en/goodbye.wav"]["key"] = "text-was-different"
    stale = prompts / "en" / "no-longer-a-prompt.wav"
    shutil.copy(prompts / "en" / "goodbye.wav", stale)
    data["files"]["en/no-longer-a-prompt.wav"] = dict(data["files"]["en/result-failed.wav"])
    data["files"]["en/no-longer-a-prompt.wav"]["sha256"] = data["files"]["en/goodbye.wav"]["sha256"]
    manifest_path.write_text(json.dumps(data))
    report = build_prompts(prompts, ["en"])
    assert report.generated == ["en/goodbye.wav"]
    assert report.removed == ["en/no-longer-a-prompt.wav"] and not stale.exists()


def test_missing_engine_says_what_to_install(
    prompts: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PromptBuildError, match="apt-get install espeak-ng"):
        build_prompts(prompts, ["en"])


def test_cli_builds_into_the_given_directory(
    prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from payivr.cli import main

    (prompts / "en" / "goodbye.wav").unlink()
    assert (
        main(["prompts", "build", "--out", str(prompts), "--language", "en", "--voice", "en=en-gb"])
        == 0
    )
    assert "1 generated" in capsys.readouterr().out
    assert (prompts / "en" / "goodbye.wav").stat().st_size > 1000
    assert main(["prompts", "build", "--out", str(prompts), "--voice", "nl"]) == 2
