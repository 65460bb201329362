"""Test support for callbacks: a real HTTP endpoint on loopback, configs, workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from payivr.callbacks.policy import CallbackPolicy
from payivr.callbacks.worker import Worker, WorkerSettings
from payivr.core.config import Config, load_config
from payivr.core.result import PaymentResult
from payivr.store.connect import redis_from_url
from payivr.store.outbox import Outbox
from payivr.store.redis_store import RedisSessionStore
from tests.integration.store.storesupport import approved, make_session
from tests.support.servers import free_port, stop_process

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
SECRETS = REPO / "config" / "secrets.example.yaml"
CALLBACK_SECRET = b"demo-callback-secret-acme-0001"


@dataclass
class Received:
    event_id: str
    signature: str
    body: bytes
    at: float
    headers: dict[str, str] = field(default_factory=dict)


# behaviour(event_id, nth request for that event id (1-based)) -> (status, delay_s)
Behaviour = Callable[[str, int], tuple[int, float]]


class Endpoint:
    """A merchant's callback endpoint: records every POST, answers as told."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.behaviour: Behaviour = lambda _e, _n: (200, 0.0)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.hold = threading.Event()  # set: requests that wait on it are released

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/payivr/result"

    def count(self, event_id: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.event_id == event_id)

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.received]

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                event_id = self.headers.get("X-Payivr-Event-Id", "")
                with endpoint._lock:
                    endpoint.received.append(
                        Received(
                            event_id,
                            self.headers.get("X-Payivr-Signature", ""),
                            body,
                            time.time(),
                            dict(self.headers.items()),
                        )
                    )
                    nth = sum(1 for r in endpoint.received if r.event_id == event_id)
                status, delay = endpoint.behaviour(event_id, nth)
                if delay < 0:  # hold until released (or the client goes away)
                    endpoint.hold.wait(-delay)
                elif delay:
                    time.sleep(delay)
                payload = b'{"ok":true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextlib.contextmanager
def endpoint_running(port: int | None = None) -> Iterator[Endpoint]:
    ep = Endpoint(port).start()
    try:
        yield ep
    finally:
        ep.hold.set()
        ep.stop()


def write_config(tmp: Path, redis_url: str, **services_callbacks: Any) -> Path:
    """The example config pointing at the test's Redis, plus two stricter merchants."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["secrets_file"] = str(SECRETS)
    data["services"]["redis"]["url"] = redis_url
    data["services"]["callbacks"].update(services_callbacks)
    acme = data["merchants"]["acme"]
    # `strict`: production defaults (https only, public addresses only).
    data["merchants"]["strict"] = {
        **acme,
        "allow_http_callbacks": False,
        "allow_private_callback_addresses": False,
    }
    # `public`: http allowed (to reach the test endpoint) but private addresses not.
    data["merchants"]["public"] = {**acme, "allow_private_callback_addresses": False}
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def policies(config: Config) -> dict[str, CallbackPolicy]:
    return {mid: CallbackPolicy.from_merchant(m) for mid, m in config.merchants.items()}


def record(redis_url: str, url: str, n: int = 1, merchant: str = "acme") -> list[PaymentResult]:
    """Run the store's side of n payments: create, result (which writes the outbox)."""
    store = RedisSessionStore(redis_from_url(redis_url))
    results = []
    for i in range(n):
        session = make_session(url, order=f"A{i:04d}")
        if merchant != "acme":
            from dataclasses import replace

            session = replace(session, request=replace(session.request, merchant=merchant))
        store.create(session)
        result = approved(session)
        store.record_result(session, result, datetime.now(UTC))
        results.append(result)
    return results


def fast_settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = dict(
        concurrency=8,
        connect_timeout_s=0.5,
        read_timeout_s=1.0,
        retry_for_s=30.0,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
        lease_s=3.0,
        claim_idle_s=0.5,
        block_ms=100,
    )
    values.update(overrides)
    return WorkerSettings(**values)


@contextlib.contextmanager
def worker_thread(
    redis_url: str, config_path: Path, settings: WorkerSettings | None = None
) -> Iterator[Worker]:
    config = load_config(config_path)
    outbox = Outbox(redis_from_url(redis_url, socket_timeout=5))
    worker = Worker(outbox, policies(config), settings or fast_settings())
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)


def spawn_worker(
    config_path: Path, log_path: Path, *extra: str, consumer: str = ""
) -> subprocess.Popen[bytes]:
    """`payivr callbacks work` as its own process, with short test timings.

    Its log goes to a file (a pipe nobody reads would fill up and stall it).
    """
    args = [
        sys.executable,
        "-m",
        "payivr.cli",
        "callbacks",
        "work",
        "--config",
        str(config_path),
        "--concurrency",
        "8",
        "--backoff-base",
        "0.05",
        "--backoff-max",
        "0.2",
        "--connect-timeout",
        "0.5",
        "--read-timeout",
        "10",
        "--lease",
        "2",
        "--claim-idle",
        "0.5",
        "--metrics-port",
        "0",
    ]
    if consumer:
        args += ["--consumer", consumer]
    env = {**os.environ, "PYTHONPATH": str(REPO / "pylib")}
    with open(log_path, "ab") as log:
        return subprocess.Popen([*args, *extra], env=env, stdout=log, stderr=log)


def run_cli(config_path: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`payivr callbacks <args>` (with --config unless config_path is None)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "pylib")}
    config = ["--config", str(config_path)] if config_path is not None else []
    return subprocess.run(
        [sys.executable, "-m", "payivr.cli", "callbacks", args[0], *config, *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    # Workers finish their in-flight delivery on SIGTERM: give them longer.
    stop_process(proc, grace_s=10)


def wait_until(check: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def scraped_samples(text: str) -> dict[str, float]:
    """A Prometheus text exposition as `name{label="v"}` -> value, parsed by the
    client library's own parser (so the format is checked, not just substrings)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
