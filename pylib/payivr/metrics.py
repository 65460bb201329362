"""Prometheus plumbing shared by the payivr services (docs/monitoring.md).

Each service keeps its own `CollectorRegistry` (a test or a process can hold several
services without their counts mixing) and serves it with `serve`. Label values go
through payivr.core.metric_labels.label_value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("payivr.metrics")

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

# Seconds a processor takes to settle a charge (the merchant timeout is 10-30 s).
PROCESSOR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)


class CallStats(Protocol):
    """What an OutboundServer counts (payivr.esl.server.ServerStats)."""

    active: int
    completed: int
    caller_gone: int
    failed: int


class CallStatsCollector(Collector):
    """An outbound-socket server's counts, read at scrape time (no hook in the server)."""

    def __init__(self, prefix: str, stats: Callable[[], CallStats]) -> None:
        self.prefix = prefix
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        yield GaugeMetricFamily(
            f"{self.prefix}_calls_in_progress", "Calls connected now.", value=s.active
        )
        ended = CounterMetricFamily(
            f"{self.prefix}_calls_ended", "Calls ended, by how the socket ended.", labels=["end"]
        )
        ended.add_metric(["completed"], s.completed)
        ended.add_metric(["caller-gone"], s.caller_gone)
        ended.add_metric(["failed"], s.failed)
        yield ended


def serve(registry: CollectorRegistry, host: str, port: int) -> WSGIServer | None:
    """Serve `registry` on host:port (GET /metrics) from a daemon thread.

    A port that cannot be bound is logged as an error and the service runs on without
    metrics (None): calls must not stop for want of a scrape, and the scrape's
    failure raises PayivrServiceDown (monitoring/alerts.yml).
    """
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("metrics: cannot serve on %s:%d (%s); running without", host, port, exc)
        return None
    return server
