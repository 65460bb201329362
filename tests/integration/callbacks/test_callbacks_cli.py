"""`payivr callbacks list|replay|verify` as an operator and a merchant run them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from payivr.core.signature import sign_callback
from tests.integration.callbacks.cbsupport import (
    CALLBACK_SECRET,
    Endpoint,
    fast_settings,
    record,
    run_cli,
    wait_until,
    worker_thread,
)

pytestmark = pytest.mark.integration


def listed(config_path: Path) -> list[dict[str, object]]:
    out = run_cli(config_path, "list", "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_list_shows_pending_retrying_and_dead_with_attempts_and_error(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, _n: (500, 0.0)
    (dead,) = record(redis_url, endpoint.url)
    with worker_thread(redis_url, config_path, fast_settings(retry_for_s=0.4)) as worker:
        assert wait_until(lambda: sum(worker.metrics.dead.values()) == 1, timeout=5)
    (retrying,) = record(redis_url, endpoint.url)
    with worker_thread(
        redis_url, config_path, fast_settings(backoff_base_s=60, backoff_max_s=60, retry_for_s=3600)
    ) as worker:
        assert wait_until(lambda: worker.metrics.retried == 1, timeout=5)
    (pending,) = record(redis_url, endpoint.url)
    rows = {row["event_id"]: row for row in listed(config_path)}
    assert rows[dead.event_id]["state"] == "dead"
    assert rows[dead.event_id]["reason"] == "retry-window-exhausted"
    assert rows[dead.event_id]["last_status"] == "500"
    assert rows[retrying.event_id]["state"] == "retrying"
    assert rows[retrying.event_id]["attempts"] == 1
    assert "HTTP 500" in str(rows[retrying.event_id]["last_error"])
    assert rows[pending.event_id]["state"] == "pending"
    assert rows[pending.event_id]["attempts"] == 0
    table = run_cli(config_path, "list")
    assert dead.event_id in table.stdout and "dead" in table.stdout
    only_dead = run_cli(config_path, "list", "--state", "dead", "--json").stdout.splitlines()
    assert [json.loads(x)["event_id"] for x in only_dead] == [dead.event_id]


def test_replay_one_and_all_dead_resend_with_the_same_event_id(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, _n: (500, 0.0)
    results = record(redis_url, endpoint.url, n=3)
    with worker_thread(redis_url, config_path, fast_settings(retry_for_s=0.3)) as worker:
        assert wait_until(lambda: sum(worker.metrics.dead.values()) == 3, timeout=5)
    endpoint.behaviour = lambda _e, _n: (200, 0.0)
    tries_before = len(endpoint.received)

    out = run_cli(config_path, "replay", results[0].event_id)
    assert out.returncode == 0 and "requeued" in out.stdout
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 1)
    states = {row["event_id"]: row["state"] for row in listed(config_path)}
    assert results[0].event_id not in states
    assert states[results[1].event_id] == states[results[2].event_id] == "dead"

    out = run_cli(config_path, "replay", "--all-dead")
    assert out.returncode == 0 and "requeued 2" in out.stdout
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 2)
    assert listed(config_path) == []
    delivered = [r.event_id for r in endpoint.received[tries_before:]]
    assert sorted(delivered) == sorted(r.event_id for r in results)

    missing = run_cli(config_path, "replay", "evt_nope")
    assert missing.returncode == 1 and "no such callback" in missing.stdout


def test_replay_of_a_retrying_entry_makes_it_due_now(
    redis_url: str, config_path: Path, endpoint: Endpoint
) -> None:
    endpoint.behaviour = lambda _e, nth: (500 if nth == 1 else 200, 0.0)
    (result,) = record(redis_url, endpoint.url)
    with worker_thread(
        redis_url,
        config_path,
        fast_settings(backoff_base_s=600, backoff_max_s=600, retry_for_s=3600),
    ) as worker:
        assert wait_until(lambda: worker.metrics.retried == 1)
        out = run_cli(config_path, "replay", result.event_id)
        assert "due now" in out.stdout
        assert wait_until(lambda: worker.metrics.delivered == 1, timeout=5)
    assert endpoint.event_ids() == [result.event_id] * 2


def test_verify_accepts_a_good_signature_and_refuses_a_tampered_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"event_id":"evt_1","result":"approved"}'
    header = sign_callback(CALLBACK_SECRET, body, int(time.time()))
    (tmp_path / "body.json").write_bytes(body)
    (tmp_path / "tampered.json").write_bytes(body.replace(b"approved", b"declined"))
    monkeypatch.setenv("CB_SECRET", CALLBACK_SECRET.decode())
    good = run_cli(
        None,
        "verify",
        "--signature",
        header,
        "--body-file",
        str(tmp_path / "body.json"),
        "--secret-env",
        "CB_SECRET",
        "--max-age",
        "300",
    )
    assert good.returncode == 0 and "valid" in good.stdout
    bad = run_cli(
        None,
        "verify",
        "--signature",
        header,
        "--body-file",
        str(tmp_path / "tampered.json"),
        "--secret-env",
        "CB_SECRET",
    )
    assert bad.returncode == 1
    (tmp_path / "secret").write_text("wrong-secret\n")
    wrong = run_cli(
        None,
        "verify",
        "--signature",
        header,
        "--body-file",
        str(tmp_path / "body.json"),
        "--secret-file",
        str(tmp_path / "secret"),
    )
    assert wrong.returncode == 1
    old = sign_callback(CALLBACK_SECRET, body, int(time.time()) - 3600)
    stale = run_cli(
        None,
        "verify",
        "--signature",
        old,
        "--body-file",
        str(tmp_path / "body.json"),
        "--secret-env",
        "CB_SECRET",
        "--max-age",
        "300",
    )
    assert stale.returncode == 1


def test_list_and_replay_say_so_when_redis_is_down(tmp_path: Path) -> None:
    from tests.integration.callbacks.cbsupport import write_config
    from tests.support.servers import free_port

    config_path = write_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    for args in (("list",), ("replay", "--all-dead")):
        out = run_cli(config_path, *args)
        assert out.returncode == 3 and "redis unavailable" in out.stderr
        assert "Traceback" not in out.stderr
