"""The callback worker's Prometheus metrics, on `prometheus_client`.

Labels carry only stable ids (reason), never URLs, event ids or anything from a body.
Each `Metrics` has its own registry, so a process (or a test) can hold several
workers without their counts mixing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("payivr.callbacks.metrics")

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
# Shown at 0 before any entry died, so that a dashboard's rate() has a series to use.
DEFAULT_DEAD_REASON = "retry-window-exhausted"


class _OutboxGauges(Collector):
    """Outbox sizes read from Redis at scrape time (`Outbox.counts`)."""

    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.read()
        except Exception as exc:  # Redis down: the counters are still worth scraping
            log.warning("metrics: outbox sizes unavailable (%s)", type(exc).__name__)
            return
        for key, value in sorted(counts.items()):
            yield GaugeMetricFamily(
                f"payivr_callbacks_{key}_entries", f"Entries in the {key} set.", value=value
            )


class Metrics:
    """Counters and the latency histogram of one outbox worker (thread-safe).

    `namespace` names the outbox: `callbacks`, or `comments` for the after-call
    comment worker, which shares the callback worker's process and `registry`.
    """

    def __init__(
        self, namespace: str = "callbacks", registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.prefix = f"payivr_{namespace}"
        p = self.prefix
        self._delivered = Counter(
            f"{p}_delivered",
            "Deliveries answered with a 2xx.",
            registry=self.registry,
        )
        self._retried = Counter(
            f"{p}_retried",
            "Failed attempts scheduled for a retry.",
            registry=self.registry,
        )
        self._dead = Counter(
            f"{p}_dead",
            "Entries parked as dead, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._dead.labels(reason=DEFAULT_DEAD_REASON)
        self._latency = Histogram(
            f"{p}_result_to_delivery_seconds",
            "Time from the entry being queued to its first 2xx.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_delivered(self, latency_s: float | None) -> None:
        """A 2xx; `latency_s` from the result (None for replays, which would skew it)."""
        self._delivered.inc()
        if latency_s is not None:
            self._latency.observe(latency_s)

    def observe_retried(self) -> None:
        self._retried.inc()

    def observe_dead(self, reason: str) -> None:
        self._dead.labels(reason=reason).inc()

    def add_outbox_gauges(self, read: Callable[[], dict[str, int]]) -> None:
        """Expose `read()` (name -> entries) as `payivr_callbacks_<name>_entries` gauges
        (the comment outbox's as `payivr_callbacks_comments_<name>_entries`)."""
        self.registry.register(_OutboxGauges(read))

    @property
    def delivered(self) -> int:
        return int(self._sample(f"{self.prefix}_delivered_total"))

    @property
    def retried(self) -> int:
        return int(self._sample(f"{self.prefix}_retried_total"))

    @property
    def dead(self) -> dict[str, int]:
        """Dead entries by reason (reasons seen so far, and the default one)."""
        return {
            sample.labels["reason"]: int(sample.value)
            for metric in self._dead.collect()
            for sample in metric.samples
            if sample.name == f"{self.prefix}_dead_total"
        }

    def _sample(self, name: str) -> float:
        value = self.registry.get_sample_value(name)
        return 0.0 if value is None else value

    def render(self) -> str:
        """The Prometheus text exposition of everything registered."""
        return generate_latest(self.registry).decode("utf-8")
