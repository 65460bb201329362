"""Metric labels, the metrics settings and the pure parts of the service metrics
(docs/monitoring.md); the scrapes themselves are tests/integration/monitoring."""

from __future__ import annotations

import dataclasses
import logging
import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from payivr.core.config import ConfigError, load_config
from payivr.core.metric_labels import label_value
from payivr.core.plan import Field, FieldReport
from payivr.core.processor import ProcessorAnswer, ResultCode
from payivr.core.result import Operation, PaymentResult
from payivr.execution.metrics import PaymentMetrics
from payivr.flows.metrics import FlowMetrics
from payivr.kamailio.settings import KamailioSettings, Socket, render_local_cfg
from payivr.metrics import serve
from tests.unit.helpers import EXAMPLE, config_from, example_data


def test_label_values_let_no_digit_through() -> None:
    assert label_value("invalid-number") == "invalid-number"
    assert label_value("X-Pay-Signature") == "X-Pay-Signature"
    assert label_value(None) == label_value("") == "none"
    for unsafe in ("4111111111111111", "A1001", "order-77", "x" * 60, "a b", "é"):
        assert label_value(unsafe) == "other"
    assert label_value("merchant-42", known={"merchant-42"}) == "merchant-42"
    assert label_value("acme", known={"merchant-42"}) == "other"


def test_metrics_ports_default_and_must_not_clash() -> None:
    config = load_config(EXAMPLE)
    assert config.services.metrics_host == "127.0.0.1"
    assert config.services.esl.metrics_port == 9465
    assert config.services.kamailio.metrics_port is None  # Kamailio serves none unless set
    data = example_data()
    data["services"]["kamailio"]["metrics_port"] = 9464  # the callback worker's
    data["services"]["esl"]["metrics_port"] = data["services"]["esl"].get("listen_port", 8084)
    data["services"]["agent_api"] = {"metrics_port": 9464}
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert set(err.value.problems) >= {
        "services.esl.metrics_port: 8084 is already esl.listen_port",
        "services.callbacks.metrics_port: 9464 is already agent_api.metrics_port",
        "services.kamailio.metrics_port: 9464 is already agent_api.metrics_port",
    }
    data = example_data()
    data["services"]["esl"]["metrics_port"] = 70000
    with pytest.raises(ConfigError) as err:
        config_from(data)
    assert "services.esl.metrics_port: must be a port number (1-65535)" in err.value.problems


def test_kamailio_metrics_socket_and_define_only_when_configured() -> None:
    base = KamailioSettings(
        config_path=Path("/etc/payivr/payivr.yaml"),
        kemi_script=Path("/k/payivr_kemi.py"),
        runtime_dir=Path("/run/payivr"),
        advertise_host="sbc.example.com",
        listen=(Socket("udp", "10.0.0.1", 5060),),
        freeswitch_nodes=("sip:10.0.0.5:5080",),
        pike_density=50,
    )
    off = render_local_cfg(base)
    assert "PAYIVR_WITH_METRICS" not in off and "9467" not in off
    on = render_local_cfg(dataclasses.replace(base, metrics=Socket("tcp", "10.0.0.1", 9467)))
    assert "#!define PAYIVR_WITH_METRICS 1" in on
    assert "listen=tcp:10.0.0.1:9467" in on
    assert "alias=sbc.example.com:9467" not in on  # the metrics port is not a SIP alias


def _result(merchant: str, code: ResultCode, reason: str | None) -> PaymentResult:
    return PaymentResult(
        event_id="evt_1", session_id="Sess1234567890", merchant=merchant, order="A1001",
        operation=Operation.SALE, code=code, reason=reason, amount=1250, currency="EUR",
        auth_code=None, token=None, card_brand="visa", card_last4="1111",
        created_at="t", completed_at="t",
    )  # fmt: skip


def test_payment_metrics_count_without_ids() -> None:
    m = PaymentMetrics(merchants={"acme"})
    m.result(_result("acme", ResultCode.APPROVED, None))
    m.result(_result("ghost", ResultCode.FAILED, "processor-timeout"))
    m.field(FieldReport(Field.CARD_NUMBER, False, "invalid-number", 16))
    m.field(FieldReport(Field.CARD_NUMBER, True, None, 16, "visa"))
    m.processor(ProcessorAnswer(ResultCode.APPROVED), 0.4)
    text = generate_latest(m.registry).decode()
    assert 'payivr_payment_results_total{code="approved",merchant="acme",reason="none"} 1.0' in text
    assert (
        'payivr_payment_results_total{code="failed",merchant="other",reason="processor-timeout"}'
        in text
    )
    assert 'payivr_payment_fields_total{field="card_number",outcome="invalid-number"} 1.0' in text
    assert 'payivr_processor_seconds_count{code="approved"} 1.0' in text
    for secret in ("A1001", "Sess1234567890", "1111", "evt_1"):
        assert secret not in text


def test_flow_metrics_read_the_flow_events() -> None:
    registry = CollectorRegistry()
    m = FlowMetrics(registry, flows=["support"], queues=["billing"])
    m.event("flow.started", {"flow": "support", "call": "c-5551234"})
    m.event("activity.done", {"flow": "support", "kind": "queue", "outcome": "answered"})
    m.event("queue.answered", {"flow": "support", "queue": "billing", "wait_s": "12"})
    m.event("flow.ended", {"flow": "support", "ended_by": "caller"})
    m.event("flow.started", {"flow": "unknown-flow"})
    sample = registry.get_sample_value
    assert sample("payivr_flows_started_total", {"flow": "support"}) == 1
    assert sample("payivr_flows_started_total", {"flow": "other"}) == 1
    assert sample("payivr_flows_ended_total", {"flow": "support", "ended_by": "caller"}) == 1
    labels = {"flow": "support", "kind": "queue", "outcome": "answered"}
    assert sample("payivr_flow_activities_total", labels) == 1
    wait = {"queue": "billing", "outcome": "answered"}
    assert sample("payivr_flow_queue_wait_seconds_sum", wait) == 12
    assert "5551234" not in generate_latest(registry).decode()


def test_a_taken_metrics_port_is_logged_and_the_service_runs_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, "payivr.metrics"):
            assert serve(CollectorRegistry(), "127.0.0.1", port) is None
    assert f"cannot serve on 127.0.0.1:{port}" in caplog.text
