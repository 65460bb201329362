"""Prometheus text exposition of the callback worker's counters (no client library).

Labels carry only stable ids (reason), never URLs, event ids or anything from a body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Seconds from the result being recorded to the first 2xx.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)


class Metrics:
    """Thread-safe counters and the latency histogram of one worker process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.retried = 0
        self.dead: dict[str, int] = {}
        self._buckets = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0

    def observe_delivered(self, latency_s: float | None) -> None:
        """A 2xx; `latency_s` from the result (None for replays, which would skew it)."""
        with self._lock:
            self.delivered += 1
            if latency_s is None:
                return
            self._latency_sum += latency_s
            self._latency_count += 1
            for i, bound in enumerate(LATENCY_BUCKETS):
                if latency_s <= bound:
                    self._buckets[i] += 1

    def observe_retried(self) -> None:
        with self._lock:
            self.retried += 1

    def observe_dead(self, reason: str) -> None:
        with self._lock:
            self.dead[reason] = self.dead.get(reason, 0) + 1

    def render(self, gauges: dict[str, int] | None = None) -> str:
        """The text exposition format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP payivr_callbacks_delivered_total Callbacks answered with a 2xx.",
                "# TYPE payivr_callbacks_delivered_total counter",
                f"payivr_callbacks_delivered_total {self.delivered}",
                "# HELP payivr_callbacks_retried_total Failed attempts scheduled for a retry.",
                "# TYPE payivr_callbacks_retried_total counter",
                f"payivr_callbacks_retried_total {self.retried}",
                "# HELP payivr_callbacks_dead_total Entries parked as dead, by reason.",
                "# TYPE payivr_callbacks_dead_total counter",
            ]
            if not self.dead:
                lines.append('payivr_callbacks_dead_total{reason="retry-window-exhausted"} 0')
            for reason, n in sorted(self.dead.items()):
                lines.append(f'payivr_callbacks_dead_total{{reason="{reason}"}} {n}')
            name = "payivr_callbacks_result_to_delivery_seconds"
            lines += [
                f"# HELP {name} Time from the result to the first 2xx of its callback.",
                f"# TYPE {name} histogram",
            ]
            for bound, n in zip(LATENCY_BUCKETS, self._buckets, strict=True):
                lines.append(f'{name}_bucket{{le="{bound:g}"}} {n}')
            lines.append(f'{name}_bucket{{le="+Inf"}} {self._latency_count}')
            lines.append(f"{name}_sum {self._latency_sum:.6f}")
            lines.append(f"{name}_count {self._latency_count}")
        for key, value in sorted((gauges or {}).items()):
            lines += [
                f"# TYPE payivr_callbacks_{key}_entries gauge",
                f"payivr_callbacks_{key}_entries {value}",
            ]
        return "\n".join(lines) + "\n"


def serve_metrics(
    metrics: Metrics, host: str, port: int, gauges: Callable[[], dict[str, int]] | None = None
) -> ThreadingHTTPServer:
    """Serve GET /metrics on host:port from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            try:
                extra = gauges() if gauges else None
            except Exception:  # Redis down: counters are still worth scraping
                extra = None
            body = metrics.render(extra).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes are not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
