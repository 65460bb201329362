"""`payivr check-config` validates every feature's own section (payivr.feature_checks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.core.config import Config, load_config
from payivr.feature_checks import FEATURE_CHECKS, check_features
from tests.unit.helpers import EXAMPLE, example_data


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    shutil.copy(EXAMPLE.parent / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def one_mistake_per_feature() -> dict[str, Any]:
    data = example_data()
    services = data["services"]
    services["freeswitch"] = {"srtp": "sometimes"}
    services["agent_api"] = {"dtmf_mask": "loud"}
    return data


EXPECTED = (
    "services.freeswitch.srtp: must be one of",
    "services.agent_api.dtmf_mask:",
)


def test_example_config_has_no_feature_problems() -> None:
    assert check_features(load_config(EXAMPLE), {}) == []


def test_check_config_lists_every_feature_problem_and_exits_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, one_mistake_per_feature())
    out = subprocess.run(
        [sys.executable, "-m", "payivr.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{len(EXPECTED)} problem(s)" in out.stderr
    for expected in EXPECTED:
        assert expected in out.stderr
    assert "ok" not in out.stdout


def test_a_feature_that_cannot_be_imported_does_not_hide_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def needs_a_missing_module(config: Config, environ: object) -> list[str]:
        raise ModuleNotFoundError("No module named 'nothere'", name="nothere")

    checks = {"broken": needs_a_missing_module, **FEATURE_CHECKS}
    monkeypatch.setattr("payivr.feature_checks.FEATURE_CHECKS", checks)
    config = load_config(write_config(tmp_path, one_mistake_per_feature()))
    problems = check_features(config, {})
    assert problems[0] == "broken: cannot be checked, a module is missing (nothere)"
    for expected in EXPECTED:
        assert any(p.startswith(expected) for p in problems[1:]), expected


def test_each_problem_is_listed_once(tmp_path: Path) -> None:
    # The FreeSWITCH settings read the agent settings too: their problem is not doubled.
    data = example_data()
    data["services"]["agent_api"] = {"dtmf_mask": "loud"}
    problems = check_features(load_config(write_config(tmp_path, data)), {})
    assert len(problems) == 1 and problems[0].startswith("services.agent_api.dtmf_mask:")


def test_every_feature_section_reports_through_one_reader_with_paths(tmp_path: Path) -> None:
    """services.freeswitch and the processors read through the core's Reader (as the
    loader reads services.esl): typos, wrong types and bad items all come back as
    `path: must be ...`."""
    data = example_data()
    data["services"]["freeswitch"] = {
        "srtpp": "optional",
        "tls": {"enabled": "yes", "verify": "none"},
        "rtp_ports": [20000, "20999"],
        "max_sessions": 0,
        "kamailio_addresses": ["10.0.0.1", "kamailio.example"],
    }
    problems = check_features(load_config(write_config(tmp_path, data)), {})
    assert problems == [
        "services.freeswitch.tls.enabled: must be true or false",
        "services.freeswitch.rtp_ports[1]: must be an integer",
        "services.freeswitch.rtp_ports: must be [first, last] with 1024 <= first < last <= 65535",
        "services.freeswitch.kamailio_addresses[1]: must be an IP address",
        "services.freeswitch.max_sessions: must be an integer from 1 to 100000",
        "services.freeswitch.srtpp: unknown setting",
        "services.freeswitch.tls.verify: unknown setting",
    ]


def test_a_node_problem_names_its_config_path(tmp_path: Path) -> None:
    from payivr.freeswitch.settings import FreeswitchConfigError, freeswitch_settings

    data = example_data()
    data["services"]["freeswitch_nodes"] = ["sip:10.0.0.5:5080", "sip:fs2.example:5080"]
    config = load_config(write_config(tmp_path, data))
    with pytest.raises(FreeswitchConfigError) as err:
        freeswitch_settings(config, "sip:fs2.example:5080")
    assert err.value.problems == [
        "services.freeswitch_nodes[1]: 'sip:fs2.example:5080': FreeSWITCH binds an IP "
        "address; use one in the URI"
    ]
