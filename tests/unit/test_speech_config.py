"""services.esl.speech: operator Vosk models per language, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from payivr.core.config import ConfigError
from tests.unit.helpers import config_from, example_data


def vosk_model(folder: Path) -> Path:
    """The files a Vosk model directory has (contents do not matter to the check)."""
    (folder / "am").mkdir(parents=True)
    (folder / "conf").mkdir()
    (folder / "am" / "final.mdl").write_bytes(b"model")
    (folder / "conf" / "model.conf").write_text("--sample-frequency=16000\n")
    return folder


def test_defaults_are_pocketsphinx_only() -> None:
    speech = config_from(example_data()).services.esl.speech
    assert speech.pocketsphinx is True
    assert dict(speech.vosk_models) == {}
    assert speech.decode_processes == 2


def test_vosk_models_per_language(tmp_path: Path) -> None:
    data = example_data()
    es = vosk_model(tmp_path / "es")
    data["services"]["esl"]["speech"] = {"vosk_models": {"es": str(es)}, "decode_processes": 4}
    speech = config_from(data).services.esl.speech
    assert dict(speech.vosk_models) == {"es": es.resolve()}
    assert speech.decode_processes == 4


def test_a_directory_that_is_not_a_model_and_an_unknown_language_are_refused(
    tmp_path: Path,
) -> None:
    data = example_data()
    (tmp_path / "empty").mkdir()
    data["services"]["esl"]["speech"] = {
        "vosk_models": {"pt": str(tmp_path / "empty"), "fr": str(vosk_model(tmp_path / "fr"))},
        "engine": "whisper",
    }
    with pytest.raises(ConfigError) as err:
        config_from(data)
    problems = "\n".join(err.value.problems)
    assert "services.esl.speech.vosk_models.pt:" in problems
    assert "not a Vosk model directory" in problems
    assert "services.esl.speech.vosk_models.fr: must be one of es, en, pt, nl" in problems
    assert "services.esl.speech.engine" in problems
