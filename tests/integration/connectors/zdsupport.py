"""Test support for connectors: the example config with connectors pointing at a fake."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from payivr.core.config import Config, parse_config
from payivr.core.connector_settings import ConnectorSettings
from tests.support.fake_zendesk import FakeZendesk

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
TOKEN_ENV = "PAYIVR_TEST_ZENDESK_TOKEN"


def connector_doc(fake: FakeZendesk, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "base_url": fake.base_url,
        "auth": {"kind": "zendesk", "email": fake.email, "api_token": f"env:{TOKEN_ENV}"},
        "timeouts": {"connect_s": 1, "read_s": 0.5, "overall_s": 2},
        "retry": {"attempts": 3, "backoff_s": 0.05, "max_retry_after_s": 1},
    }
    doc.update(overrides)
    return doc


def config_with(fake: FakeZendesk, redis_url: str | None = None, **overrides: Any) -> Config:
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["connectors"] = {"zendesk": connector_doc(fake, **overrides)}
    if redis_url:
        data["services"]["redis"]["url"] = redis_url
    return parse_config(data, base_dir=EXAMPLE.parent, environ={TOKEN_ENV: fake.api_token})


def settings_for(fake: FakeZendesk, **overrides: Any) -> Mapping[str, ConnectorSettings]:
    return config_with(fake, **overrides).connectors


def write_config_file(tmp: Path, fake: FakeZendesk, redis_url: str) -> Path:
    """A config file on the test's Redis with the `zendesk` connector (token from
    the environment variable TOKEN_ENV)."""
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["secrets_file"] = str(EXAMPLE.parent / data["secrets_file"])
    data["services"]["redis"]["url"] = redis_url
    data["connectors"] = {"zendesk": connector_doc(fake)}
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
