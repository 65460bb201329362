"""Workers as real processes: SIGKILL mid-delivery, two workers at once, restarts."""

from __future__ import annotations

import collections
import re
import signal
import urllib.request
from pathlib import Path

import pytest

from payivr.store import keys
from payivr.store.connect import redis_from_url
from tests.integration.callbacks.cbsupport import (
    Endpoint,
    endpoint_running,
    record,
    scraped_samples,
    spawn_worker,
    stop_worker,
    wait_until,
    worker_thread,
    write_config,
)
from tests.support.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def child_pids(parent: int) -> list[int]:
    """Processes whose parent is `parent` (from /proc: no procps needed)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def outbox_empty(redis_url: str) -> bool:
    client = redis_from_url(redis_url)
    return client.xlen(keys.OUTBOX) == 0 and client.zcard(keys.OUTBOX_SCHEDULE) == 0


def test_worker_killed_mid_delivery_restarted_delivers_same_event_id(
    redis_url: str, config_path: Path, endpoint: Endpoint, tmp_path: Path
) -> None:
    # The first POST hangs (the worker is killed while waiting for the answer).
    endpoint.behaviour = lambda _e, nth: (200, -30.0 if nth == 1 else 0.0)
    (result,) = record(redis_url, endpoint.url)
    first = spawn_worker(config_path, tmp_path / "w1.log", consumer="w1")
    try:
        assert wait_until(lambda: endpoint.count(result.event_id) == 1, timeout=10)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    finally:
        stop_worker(first)
    assert not outbox_empty(redis_url)  # still owed
    second = spawn_worker(config_path, tmp_path / "w2.log", consumer="w2")
    try:
        # Taken over when w1's lease (2 s) runs out.
        assert wait_until(lambda: outbox_empty(redis_url), timeout=15)
    finally:
        stop_worker(second)
    assert endpoint.event_ids() == [result.event_id, result.event_id]
    bodies = {r.body for r in endpoint.received}
    assert len(bodies) == 1


def test_two_workers_deliver_each_entry_once(
    redis_url: str, config_path: Path, endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.behaviour = lambda _e, _n: (200, 0.003)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [spawn_worker(config_path, log, consumer=log.stem) for log in logs]
    try:
        assert wait_until(
            lambda: (
                all("starting" in p.read_text() for p in logs if p.exists())
                and all(p.exists() for p in logs)
            ),
            timeout=10,
        )
        results = record(redis_url, endpoint.url, n=300)
        assert wait_until(
            lambda: len(endpoint.received) >= 300 and outbox_empty(redis_url), timeout=30
        )
    finally:
        for w in workers:
            stop_worker(w)
    counts = collections.Counter(endpoint.event_ids())
    assert set(counts) == {r.event_id for r in results}
    assert set(counts.values()) == {1}
    per_worker = [
        int(re.search(r"stopped: (\d+) delivered", log.read_text()).group(1))  # type: ignore[union-attr]
        for log in logs
    ]
    assert sum(per_worker) == 300 and min(per_worker) > 0, per_worker


def test_worker_restart_keeps_entries_waiting_for_retry(redis_url: str, config_path: Path) -> None:
    port = free_port()
    results = record(redis_url, f"http://127.0.0.1:{port}/cb", n=5)
    with worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.retried >= 5)
    assert redis_from_url(redis_url).xlen(keys.OUTBOX) == 5
    with endpoint_running(port) as endpoint, worker_thread(redis_url, config_path) as worker:
        assert wait_until(lambda: worker.metrics.delivered == 5)
    assert sorted(endpoint.event_ids()) == sorted(r.event_id for r in results)


def test_results_survive_redis_killed_and_restarted(tmp_path: Path) -> None:
    """Redis with the shipped persistence (appendonly yes, appendfsync everysec),
    killed with SIGKILL while results wait for an endpoint that is down."""
    server = RedisServer().start()
    try:
        config_path = write_config(tmp_path, server.url)
        port = free_port()
        results = record(server.url, f"http://127.0.0.1:{port}/cb", n=5)
        with worker_thread(server.url, config_path) as worker:
            assert wait_until(lambda: worker.metrics.retried >= 5)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(5)
            server.start()  # same port, same directory: the AOF is replayed
            with endpoint_running(port) as endpoint:
                assert wait_until(lambda: worker.metrics.delivered == 5, timeout=20)
        assert sorted(set(endpoint.event_ids())) == sorted(r.event_id for r in results)
        assert outbox_empty(server.url)
    finally:
        server.cleanup()


def test_metrics_are_exposed_in_prometheus_text(
    redis_url: str, config_path: Path, endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.behaviour = lambda _e, nth: (500 if nth == 1 else 200, 0.0)
    port = free_port()
    record(redis_url, endpoint.url, n=2)
    proc = spawn_worker(config_path, tmp_path / "w.log", "--metrics-port", str(port))
    try:
        assert wait_until(lambda: outbox_empty(redis_url), timeout=10)
        text = ""

        def scraped() -> bool:
            nonlocal text
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return scraped_samples(text).get("payivr_callbacks_delivered_total") == 2

        assert wait_until(scraped, timeout=5), text
    finally:
        stop_worker(proc)
    samples = scraped_samples(text)
    assert samples["payivr_callbacks_retried_total"] == 2
    assert samples['payivr_callbacks_result_to_delivery_seconds_bucket{le="+Inf"}'] == 2
    assert samples["payivr_callbacks_result_to_delivery_seconds_count"] == 2
    assert samples["payivr_callbacks_outbox_entries"] == 0
    assert samples["payivr_callbacks_scheduled_entries"] == 0
    assert samples["payivr_callbacks_dead_entries"] == 0


def test_sigterm_stops_the_worker_cleanly(config_path: Path, tmp_path: Path) -> None:
    proc = spawn_worker(config_path, tmp_path / "w.log")
    assert wait_until(lambda: "starting" in (tmp_path / "w.log").read_text(), timeout=10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "stopped" in (tmp_path / "w.log").read_text()


def test_default_lease_outlasts_one_attempt() -> None:
    """Otherwise a slow but live delivery would be taken over and sent twice."""
    from payivr.callbacks.worker import WorkerSettings

    s = WorkerSettings()
    assert s.lease_ms > (s.connect_timeout_s + s.read_timeout_s) * 1000


def test_processes_option_runs_and_restarts_worker_processes(
    redis_url: str, config_path: Path, endpoint: Endpoint, tmp_path: Path
) -> None:
    import os

    log = tmp_path / "sup.log"
    parent = spawn_worker(config_path, log, "--processes", "2")
    try:
        assert wait_until(lambda: log.read_text().count("starting") == 2, timeout=15)
        results = record(redis_url, endpoint.url, n=100)
        assert wait_until(
            lambda: outbox_empty(redis_url) and len(endpoint.received) >= 100, timeout=20
        )
        # Kill one worker process: the supervisor starts another.
        children = child_pids(parent.pid)
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        assert wait_until(lambda: "restarting" in log.read_text(), timeout=10)
        assert wait_until(lambda: log.read_text().count("starting") == 3, timeout=15)
        more = record(redis_url, endpoint.url, n=20)
        assert wait_until(lambda: outbox_empty(redis_url), timeout=20)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
    finally:
        stop_worker(parent)
    counts = collections.Counter(endpoint.event_ids())
    assert set(counts) == {r.event_id for r in results + more}
    assert set(counts.values()) == {1}
    assert "callback supervisor stopped" in log.read_text()
