"""A merchant moves from the sandbox to Redsys (or the HTTP connector) by config alone."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_connector_server import FakeConnector, FakeConnectorServer
from fake_redsys_server import FakeRedsys, FakeRedsysServer
from processors_support import charge_request, no_card_data_in_logs

from payivr.core.config import ConfigError, parse_config
from payivr.core.processor import ResultCode
from payivr.processors import build_processor, charge_and_settle
from payivr.processors.http_connector import HttpConnectorProcessor
from payivr.processors.redsys.client import ENDPOINTS, RedsysProcessor
from payivr.processors.redsys.crypto import SignatureVersion

__all__ = ["no_card_data_in_logs"]

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
REDSYS_KEY = "sq7HjrUOBfKmC576ILgskD5srU870gJ7"
ENVIRON = {"ACME_REDSYS_KEY": REDSYS_KEY, "ACME_CONNECTOR_KEY": "connector-secret-0123456789"}

pytestmark = pytest.mark.integration


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def with_processor(processor: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(example())
    data["merchants"]["acme"]["processor"] = processor
    return data


def load(data: dict[str, Any]) -> Any:
    return parse_config(data, base_dir=EXAMPLE.parent, environ=ENVIRON)


@pytest.fixture()
def sis() -> Iterator[FakeRedsysServer]:
    server = FakeRedsysServer(FakeRedsys(secret=REDSYS_KEY)).start()
    yield server
    server.stop()
    assert not server.state.problems, server.state.problems


@pytest.fixture()
def gateway() -> Iterator[FakeConnectorServer]:
    server = FakeConnectorServer(FakeConnector(ENVIRON["ACME_CONNECTOR_KEY"].encode())).start()
    yield server
    server.stop()
    assert not server.state.problems, server.state.problems


def test_the_example_merchant_uses_the_sandbox() -> None:
    pytest.importorskip("payivr.core.sandbox", reason="the sandbox processor is not in yet")
    merchant = load(example()).merchants["acme"]
    assert merchant.processor.type == "sandbox"
    processor = build_processor(merchant)
    assert type(processor).__name__.lower().startswith("sandbox")


def test_redsys_by_config_defaults_to_the_test_endpoint() -> None:
    config = load(
        with_processor(
            {
                "type": "redsys",
                "timeout_s": 20,
                "environment": "test",
                "merchant_code": 999008881,
                "terminal": 1,
                "secret_key": "env:ACME_REDSYS_KEY",
                "signature_version": "HMAC_SHA512_V2",
            }
        )
    )
    processor = build_processor(config.merchants["acme"])
    assert isinstance(processor, RedsysProcessor)
    assert processor.settings.endpoint == ENDPOINTS["test"]
    assert processor.settings.signature_version is SignatureVersion.HMAC_SHA512_V2
    assert processor.settings.terminal.merchant_code == "999008881"
    assert REDSYS_KEY not in repr(processor)


def test_redsys_production_endpoint() -> None:
    config = load(
        with_processor(
            {
                "type": "redsys",
                "environment": "production",
                "merchant_code": "999008881",
                "terminal": "001",
                "secret_key": "env:ACME_REDSYS_KEY",
            }
        )
    )
    processor = build_processor(config.merchants["acme"])
    assert isinstance(processor, RedsysProcessor)
    assert processor.settings.endpoint == "https://sis.redsys.es/sis/rest/trataPeticionREST"


def test_inline_secrets_and_missing_fields_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load(with_processor({"type": "redsys", "secret_key": REDSYS_KEY}))
    problems = info.value.problems
    assert any(p.startswith("merchants.acme.processor.environment:") for p in problems)
    assert any(p.startswith("merchants.acme.processor.merchant_code:") for p in problems)
    assert not any(REDSYS_KEY in p for p in problems)


@pytest.mark.usefixtures("no_card_data_in_logs")
def test_config_built_redsys_charges_the_configured_endpoint(sis: FakeRedsysServer) -> None:
    config = load(
        with_processor(
            {
                "type": "redsys",
                "timeout_s": 5,
                "environment": "test",
                "endpoint": sis.url,
                "merchant_code": "999008881",
                "terminal": "1",
                "secret_key": "env:ACME_REDSYS_KEY",
            }
        )
    )
    merchant = config.merchants["acme"]
    outcome = charge_and_settle(
        build_processor(merchant),
        charge_request("2026001", timeout_s=merchant.processor.timeout_s),
    )
    assert outcome.answer.code is ResultCode.APPROVED
    assert len(sis.state.charges()) == 1


@pytest.mark.usefixtures("no_card_data_in_logs")
def test_config_built_connector_charges(gateway: FakeConnectorServer) -> None:
    config = load(
        with_processor({"type": "http", "url": gateway.url, "secret": "env:ACME_CONNECTOR_KEY"})
    )
    processor = build_processor(config.merchants["acme"])
    assert isinstance(processor, HttpConnectorProcessor)
    assert processor.charge(charge_request("acme-77")).code is ResultCode.APPROVED
    assert len(gateway.state.charged) == 1
