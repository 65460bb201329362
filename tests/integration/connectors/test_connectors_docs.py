"""docs/connectors.md's config example is valid and its commands exist."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import yaml

from payivr.core.config import parse_config

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "connectors.md"
EXAMPLE = REPO / "config" / "payivr.example.yaml"


def test_documented_config_is_valid(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(connectors:.*?)```", DOC.read_text(), re.S)
    assert block
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    data.update(yaml.safe_load(block.group(1)))
    secrets = tmp_path / "secrets.yaml"
    base = yaml.safe_load((EXAMPLE.parent / data["secrets_file"]).read_text())
    secrets.write_text(yaml.safe_dump({**base, "zendesk_api_token": "t", "legacy_password": "p"}))
    data["secrets_file"] = str(secrets)
    config = parse_config(data, base_dir=tmp_path, environ={"CRM_TOKEN": "c"})
    assert sorted(config.connectors) == ["crm", "legacy", "zendesk"]
    assert config.connectors["zendesk"].auth.kind == "zendesk"


def test_documented_commands_exist() -> None:
    text = DOC.read_text()
    helps = ""
    for action in ("list", "replay"):
        out = subprocess.run(
            [sys.executable, "-m", "payivr.cli", "comments", action, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        helps += out.stdout
    for option in set(re.findall(r"payivr comments \w+ .*?(--[a-z-]+)", text)):
        assert option in helps, option
