"""Kamailio's metrics through its `xhttp_prom` module (docs/monitoring.md).

The counters live in Kamailio's shared memory (declared in kamailio.cfg), so every
SIP worker adds to the same series; the node gauges are read from the dispatcher at
each scrape. Labels: configured merchant ids, SIP status codes, the name of what was
wrong (a header name or `source`, `FreeSWITCH`, `Redis`), configured node URIs;
never a value from a request (payivr.metrics.label_value).
"""

from __future__ import annotations

from typing import Any

from payivr.core.config import Config
from payivr.core.errors import Rejection
from payivr.core.metric_labels import label_value
from payivr.kamailio.settings import DISPATCHER_SET

ADMITTED = "payivr_kamailio_admitted"
REJECTED = "payivr_kamailio_rejected"
NODE_UP = "payivr_kamailio_node_up"


class KamailioMetrics:
    """Counts admissions and rejections; answers the scrape (when metrics are on)."""

    def __init__(self, ksr: Any, config: Config) -> None:
        self.ksr = ksr
        # The counters exist only where kamailio.cfg loaded xhttp_prom.
        self.enabled = (ksr.kx.get_def("PAYIVR_WITH_METRICS") or "").strip() == "1"
        self.merchants = frozenset(config.merchants)
        self.nodes = config.services.freeswitch_nodes

    def admitted(self, merchant: str) -> None:
        if self.enabled:
            self.ksr.xhttp_prom.counter_inc_l1(ADMITTED, 1, label_value(merchant, self.merchants))

    def rejected(self, rejection: Rejection) -> None:
        if self.enabled:
            self.ksr.xhttp_prom.counter_inc_l2(
                REJECTED, 1, str(rejection.status), label_value(rejection.header)
            )

    def scrape(self) -> int:
        """The xhttp event: node gauges from the dispatcher, then the exposition."""
        ksr = self.ksr
        for node in self.nodes:
            up = ksr.dispatcher.ds_is_active_uri(DISPATCHER_SET, node) > 0
            ksr.xhttp_prom.gauge_set_l1(NODE_UP, "1" if up else "0", node)
        if ksr.xhttp_prom.check_uri() > 0:
            ksr.xhttp_prom.dispatch()
        else:
            ksr.xhttp.xhttp_reply(404, "Not Found", "text/plain", "GET /metrics\n")
        return 1
