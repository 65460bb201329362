"""ESL settings read from services.esl, every problem reported at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from payivr.core.config import load_config
from payivr.esl.options import OptionsError, esl_options

REPO = Path(__file__).resolve().parents[2]


def _with_esl(**esl: object) -> object:
    config = load_config(REPO / "config" / "payivr.example.yaml")
    raw = dict(config.raw)
    services = dict(raw["services"])  # type: ignore[arg-type]
    services["esl"] = {**services["esl"], **esl}  # type: ignore[dict-item]
    raw["services"] = services
    return dataclasses.replace(config, raw=raw)


def test_defaults_and_overrides() -> None:
    options = esl_options(
        _with_esl(linger_s=3, **{"return": {"use_refer": False, "proxy": "sip:10.0.0.5:5060"}})
    )  # type: ignore[arg-type]
    assert options.linger_s == 3
    assert options.returns.use_refer is False
    assert options.returns.proxy == "sip:10.0.0.5:5060"
    assert options.returns.sofia_profile == "payivr"
    assert options.listen_port == 8084


def test_every_problem_at_once() -> None:
    bad = _with_esl(linger_s=-1, processor_threads="many",
                    **{"return": {"use_refer": "yes", "proxy": "http://x"}})  # fmt: skip
    with pytest.raises(OptionsError) as err:
        esl_options(bad)  # type: ignore[arg-type]
    assert sorted(err.value.problems) == [
        "services.esl.linger_s: must be a non-negative integer",
        "services.esl.processor_threads: must be a non-negative integer",
        "services.esl.return.proxy: must be a sip: or sips: URI",
        "services.esl.return.use_refer: must be true or false",
    ]
