"""The payment metrics every driver of the capture plan reports (docs/monitoring.md).

One `PaymentMetrics` per process (the ESL application's, the agent service's), on
that process's registry; the drivers call it from their `DriverHooks`. Labels are
field names, verdict reasons, result codes and reasons, and configured merchant ids:
never digits, an order id or a session id (payivr.metrics.label_value).
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Histogram

from payivr.core.metric_labels import label_value
from payivr.core.plan import FieldReport
from payivr.core.processor import ProcessorAnswer
from payivr.core.result import PaymentResult
from payivr.metrics import PROCESSOR_BUCKETS

VALID = "valid"


class PaymentMetrics:
    """Field verdicts, results and processor latency of the payments of one process."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        merchants: Collection[str] | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.merchants = merchants
        self._fields = Counter(
            "payivr_payment_fields",
            "Card-field entries, by field and verdict (valid, or why not).",
            ["field", "outcome"],
            registry=self.registry,
        )
        self._results = Counter(
            "payivr_payment_results",
            "Payment results recorded, by merchant, SPEC result code and reason.",
            ["merchant", "code", "reason"],
            registry=self.registry,
        )
        self._processor = Histogram(
            "payivr_processor_seconds",
            "Time the processor took to settle a charge, by result code.",
            ["code"],
            buckets=PROCESSOR_BUCKETS,
            registry=self.registry,
        )

    def field(self, report: FieldReport) -> None:
        outcome = VALID if report.valid else label_value(report.reason)
        self._fields.labels(field=label_value(str(report.field)), outcome=outcome).inc()

    def result(self, result: PaymentResult) -> None:
        self._results.labels(
            merchant=label_value(result.merchant, self.merchants),
            code=label_value(str(result.code)),
            reason=label_value(result.reason),
        ).inc()

    def processor(self, answer: ProcessorAnswer, seconds: float) -> None:
        self._processor.labels(code=label_value(str(answer.code))).observe(seconds)
