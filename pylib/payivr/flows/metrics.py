"""Flow-engine metrics, read off the flow events as they are published.

Every flow event goes through the `FlowEvents` port (PublishEvent): counting them
there measures the engine with no hook inside it. Flow and queue names come from the
config (anything else is `other`); outcomes are the engine's own words.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from payivr.core.config import MerchantConfig
from payivr.core.flow.engine import ACTIVITY_DONE, FLOW_ENDED, FLOW_STARTED
from payivr.core.metric_labels import label_value
from payivr.core.session import Session

QUEUE_ANSWERED = "queue.answered"
QUEUE_ABANDONED = "queue.abandoned"
# Seconds a caller waits in a queue (mod_fifo), answered or not.
QUEUE_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class FlowEvents(Protocol):
    """payivr.flows.ports.RedisFlowEvents, the port being measured."""

    async def publish(self, name: str, fields: Mapping[str, str]) -> None: ...

    async def create_session(
        self, session: Session, merchant: MerchantConfig, ttl_s: int
    ) -> None: ...


class FlowMetrics:
    """Flows started and ended, activity outcomes and queue waits (one per process)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        flows: Collection[str],
        queues: Collection[str],
    ) -> None:
        self.flows = flows
        self.queues = queues
        self._started = Counter(
            "payivr_flows_started", "Flow calls started, by flow.", ["flow"], registry=registry
        )
        self._ended = Counter(
            "payivr_flows_ended",
            "Flow calls ended, by flow and who ended them (caller, flow, error).",
            ["flow", "ended_by"],
            registry=registry,
        )
        self._activities = Counter(
            "payivr_flow_activities",
            "Flow activities done, by flow, activity kind and outcome.",
            ["flow", "kind", "outcome"],
            registry=registry,
        )
        self._queue_wait = Histogram(
            "payivr_flow_queue_wait_seconds",
            "Time callers waited in a queue, by queue and whether an agent answered.",
            ["queue", "outcome"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )

    def event(self, name: str, fields: Mapping[str, str]) -> None:
        flow = label_value(fields.get("flow"), self.flows)
        if name == FLOW_STARTED:
            self._started.labels(flow=flow).inc()
        elif name == FLOW_ENDED:
            self._ended.labels(flow=flow, ended_by=label_value(fields.get("ended_by"))).inc()
        elif name == ACTIVITY_DONE:
            self._activities.labels(
                flow=flow,
                kind=label_value(fields.get("kind")),
                outcome=label_value(fields.get("outcome")),
            ).inc()
        elif name in (QUEUE_ANSWERED, QUEUE_ABANDONED):
            wait = fields.get("wait_s", "")
            if wait.isdigit():
                self._queue_wait.labels(
                    queue=label_value(fields.get("queue"), self.queues),
                    outcome="answered" if name == QUEUE_ANSWERED else "abandoned",
                ).observe(float(wait))


class MeasuredFlowEvents:
    """The flow-events port, counting each event after it is published."""

    def __init__(self, inner: FlowEvents, metrics: FlowMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def publish(self, name: str, fields: Mapping[str, str]) -> None:
        await self.inner.publish(name, fields)
        self.metrics.event(name, fields)

    async def create_session(self, session: Session, merchant: MerchantConfig, ttl_s: int) -> None:
        await self.inner.create_session(session, merchant, ttl_s)
