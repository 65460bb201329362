"""`services.watchdog` bounds how long a dead node's call waits for its result."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from payivr.core.config import ConfigError, load_config
from payivr.core.orphan import WatchBudget

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, watchdog: object) -> Path:
    data = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    data["secrets_file"] = str(REPO / "config" / "secrets.example.yaml")
    data["services"]["watchdog"] = watchdog
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_budget_comes_from_the_config(tmp_path: Path) -> None:
    config = load_config(
        _config(tmp_path, {"answer_allowance_s": 2, "prompt_allowance_s": 1, "margin_s": 1})
    )
    budget = WatchBudget.from_config(config.services.watchdog)
    assert budget == WatchBudget(prompt_allowance_s=1, answer_allowance_s=2, margin_s=1)
    merchant = next(iter(config.merchants.values()))
    assert budget.admission_deadline(100.0, budget.step_s(merchant)) == 102.0 + budget.step_s(
        merchant
    )


def test_defaults_unchanged_without_the_section(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, {}))
    assert WatchBudget.from_config(config.services.watchdog) == WatchBudget()


def test_unknown_or_bad_keys_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="watchdog"):
        load_config(_config(tmp_path, {"answer_allowance_s": -1}))
    with pytest.raises(ConfigError, match="watchdog"):
        load_config(_config(tmp_path, {"deadline": 5}))
