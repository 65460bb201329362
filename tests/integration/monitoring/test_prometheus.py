"""A real Prometheus (Debian `prometheus`) scrapes Kamailio and the ESL application
during test calls: the documented series exist and move, every query of the shipped
dashboard returns data, the alert rules pass `promtool`, and no scrape holds card
digits or an order id (docs/monitoring.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from payivr.kamailio.settings import Socket
from payivr.metrics import serve
from tests.esl.harness import EslHarness
from tests.esl.peer import Keys
from tests.integration.callbacks.cbsupport import endpoint_running, write_config
from tests.support import pci
from tests.support.servers import RedisServer, free_port

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "monitoring" / "grafana-dashboard.json"
ALERTS = REPO / "monitoring" / "alerts.yml"
PAN, EXPIRY, CVV = "4111111111111111", "1230", "737"
ORDER = "A1001"  # the order id of every test call (sipp and the ESL harness)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not installed (Debian `prometheus`; make apt)")
    return path


def _get(url: str) -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: loopback HTTP only")
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (checked above)
        return str(answer.read().decode())


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    data = json.loads(_get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"))
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def _value(base: str, expr: str) -> float:
    return sum(float(r["value"][1]) for r in _query(base, expr))


def _wait(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("Prometheus did not see it in time")
        time.sleep(0.25)


def test_alert_rules_pass_promtool() -> None:
    out = subprocess.run(
        [_tool("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_scrapes_every_service_during_calls(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    from tests.integration.kamailio.conftest import stack_running
    from tests.integration.kamailio.kamsupport import call_id, new_prefix, signed_sale

    prometheus = _tool("prometheus")
    kam_metrics, esl_metrics, cb_metrics, agent_metrics, prom_port = (free_port() for _ in range(5))
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "payivr-kamailio",
             "static_configs": [{"targets": [f"127.0.0.1:{kam_metrics}"]}]},
            {"job_name": "payivr-esl",
             "static_configs": [{"targets": [f"127.0.0.1:{esl_metrics}"]}]},
            {"job_name": "payivr-callbacks",
             "static_configs": [{"targets": [f"127.0.0.1:{cb_metrics}"]}]},
            {"job_name": "payivr-agent",
             "static_configs": [{"targets": [f"127.0.0.1:{agent_metrics}"]}]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(json.dumps(scrape))
    prom = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{prom_port}"
    scraped: list[str] = []
    (tmp_path / "callbacks").mkdir()  # its own config: the Kamailio stack writes one too
    worker = subprocess.Popen(
        [sys.executable, "-m", "payivr.cli", "callbacks", "work",
         "--config", str(write_config(tmp_path / "callbacks", redis_url)),
         "--metrics-port", str(cb_metrics), "--concurrency", "2"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("w"),
    )  # fmt: skip
    try:
        with (
            endpoint_running() as endpoint,
            stack_running(
                tmp_path, redis_url, metrics=Socket("tcp", "127.0.0.1", kam_metrics)
            ) as stack,
        ):
            kam_url = f"http://127.0.0.1:{kam_metrics}/metrics"
            _wait(lambda: _value(base, 'up{job="payivr-kamailio"}') == 1)
            prefix = new_prefix()
            ok = stack.uac("uac-sale-expect-relayed", [signed_sale(call_id(prefix, 1))], prefix)
            assert ok.returncode == 0, ok.explain()
            bad = signed_sale(call_id(prefix, 2), **{"X-Pay-Merchant": "nobody"})
            refused = stack.uac("uac-unknown-merchant-expect-404", [bad], prefix)
            assert refused.returncode == 0, refused.explain()
            scraped.append(_get(kam_url))
            _wait(lambda: _value(base, "payivr_kamailio_admitted") >= 1)
            _wait(lambda: _value(base, "payivr_kamailio_rejected") >= 1)
            ports = {"esl": esl_metrics, "agent": agent_metrics}
            asyncio.run(_esl_calls(redis_url, ports, base, scraped, endpoint.url))
            delivered = "payivr_callbacks_delivered_total"
            _wait(lambda: _value(base, delivered) >= 2 and len(endpoint.event_ids()) >= 2)
            scraped.append(_get(f"http://127.0.0.1:{cb_metrics}/metrics"))
            assert _query(base, "payivr_callbacks_outbox_entries")
            assert _query(base, 'payivr_kamailio_rejected{status="404"}')
            nodes = _query(base, "payivr_kamailio_node_up")
            assert [n["metric"]["node"] for n in nodes] == stack.nodes
    finally:
        worker.terminate()
        worker.wait(20)
        prom.terminate()
        prom.wait(10)
    for text in scraped:
        assert pci.find_card_data(text, short=(EXPIRY, CVV)) == []
        assert ORDER not in text, "an order id in a scrape"


async def _esl_calls(
    redis_url: str, ports: dict[str, int], base: str, scraped: list[str], callback_url: str
) -> None:
    """ESL calls (and the agent service scraped beside them), while Prometheus looks."""
    harness = EslHarness(redis_url)
    await harness.start()
    assert harness.service is not None
    exporter = serve(harness.service.registry, "127.0.0.1", ports["esl"])
    agent = await _agent_service(harness, redis_url)
    agent_exporter = serve(agent.registry, "127.0.0.1", ports["agent"])
    try:
        both_up = 'sum(up{job=~"payivr-esl|payivr-agent"})'
        await asyncio.to_thread(_wait, lambda: _value(base, both_up) == 2)
        await harness.call(
            [Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)],
            session=harness.new_session(callback_url=callback_url),
        )
        await harness.call(
            [Keys("4111111111111112#"), Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)],
            session=harness.new_session(callback_url=callback_url, order="A1002"),
        )
        scraped.append(_get(f"http://127.0.0.1:{ports['esl']}/metrics"))
        scraped.append(_get(f"http://127.0.0.1:{ports['agent']}/metrics"))
        moved = 'payivr_payment_results_total{code="approved"}'
        await asyncio.to_thread(_wait, lambda: _value(base, moved) >= 2)
        fields = _query(base, "payivr_payment_fields_total")
        outcomes = {(f["metric"]["field"], f["metric"]["outcome"]) for f in fields}
        assert ("card_number", "valid") in outcomes and any(
            field == "card_number" and outcome != "valid" for field, outcome in outcomes
        ), outcomes
        assert _value(base, "payivr_processor_seconds_count") >= 2
        ended = 'payivr_esl_calls_ended_total{end="completed"}'
        await asyncio.to_thread(_wait, lambda: _value(base, ended) >= 2)
        assert _query(base, "payivr_agent_calls_in_progress")
        # Every panel of the shipped dashboard shows data from this run.
        await asyncio.to_thread(
            _wait, lambda: _value(base, "payivr_callbacks_delivered_total") >= 2
        )
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel["targets"]:
                assert _query(base, target["expr"]), (panel["title"], target["expr"])
    finally:
        agent_exporter.shutdown()
        await agent.stop()
        await harness.stop()
        exporter.shutdown()


async def _agent_service(harness: EslHarness, redis_url: str) -> Any:
    """The agent service on free loopback ports and the test's Redis."""
    import redis

    from payivr.agent.service import build_service
    from payivr.agent.settings import load_agent_settings
    from payivr.core.config import RedisConfig
    from payivr.store.connect import async_redis_client
    from payivr.wiring import build_services

    settings, tokens = load_agent_settings(harness.config, os.environ)
    settings = dataclasses.replace(settings, listen_port=free_port(), esl_listen_port=free_port())
    services = build_services(
        harness.config, redis_client=redis.Redis.from_url(redis_url, decode_responses=True)
    )
    aredis = async_redis_client(RedisConfig(url=redis_url))
    agent = build_service(harness.config, settings, tokens, services=services, aredis=aredis)
    await agent.start()
    return agent
