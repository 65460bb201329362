"""`services.esl`: one settings type (EslConfig), read and checked by the config loader."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.core.config import ConfigError, EslConfig, ReturnSettings
from tests.unit.helpers import EXAMPLE, config_from, example_data


def _esl(**esl: Any) -> dict[str, Any]:
    data = example_data()
    data["services"]["esl"].update(esl)
    return data


def test_defaults() -> None:
    esl = config_from(example_data()).services.esl
    assert esl == EslConfig(
        listen_host="127.0.0.1",
        listen_port=8084,
        event_socket=esl.event_socket,
        prompts_dir=(EXAMPLE.parent / "var/prompts").resolve(),
        linger_s=10,
        recordings_dir=Path("/var/lib/payivr/recordings"),
        processor_threads=64,
        returns=ReturnSettings(use_refer=True, sofia_profile="payivr", proxy=None),
    )


def test_overrides() -> None:
    data = _esl(
        linger_s=3,
        recordings_dir="rec",
        processor_threads=0,
        **{"return": {"use_refer": False, "proxy": "sip:10.0.0.5:5060"}},
    )
    esl = config_from(data).services.esl
    assert esl.linger_s == 3
    assert esl.recordings_dir == (EXAMPLE.parent / "rec").resolve()
    assert esl.processor_threads == 1  # at least one thread runs the processor
    assert esl.returns == ReturnSettings(use_refer=False, proxy="sip:10.0.0.5:5060")


def test_every_problem_at_once_with_the_rest_of_the_config() -> None:
    # These were checked only by `payivr check-config` and `payivr esl serve`; every
    # service loading the file now refuses it, like any other setting.
    data = _esl(
        linger_s=-1,
        processor_threads="many",
        lingr_s=5,
        **{"return": {"use_refer": "yes", "proxy": "http://x", "proxxy": "sip:127.0.0.1"}},
    )
    data["services"]["esl"]["event_socket"]["pasword"] = "x"
    data["merchants"]["acme"]["default_return"] = "voicemail"
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert sorted(err.value.problems) == [
        "merchants.acme.default_return: hangup, agent, or a sip:/sips: URI",
        "services.esl.event_socket.pasword: unknown setting",
        "services.esl.linger_s: must be a non-negative integer",
        "services.esl.lingr_s: unknown setting",
        "services.esl.processor_threads: must be a non-negative integer",
        "services.esl.return.proxxy: unknown setting",
        "services.esl.return.proxy: must be a sip: or sips: URI",
        "services.esl.return.use_refer: must be true or false",
    ]


def test_return_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as err:
        config_from(_esl(**{"return": "refer"}))
    assert err.value.problems == ["services.esl.return: must be a mapping"]


def test_esl_serve_lists_the_problems_and_exits_2(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE.parent / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(_esl(linger_s=-1, **{"return": {"proxy": "tel:1"}})))
    out = subprocess.run(
        [sys.executable, "-m", "payivr.cli", "esl", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert sorted(out.stderr.splitlines()) == [
        "services.esl.linger_s: must be a non-negative integer",
        "services.esl.return.proxy: must be a sip: or sips: URI",
    ]
