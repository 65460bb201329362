"""Label values for metrics: only closed sets, never a caller's data (docs/monitoring.md).

Label values come from result codes, reasons, field names and names from the config
(merchants, flows, queues, nodes). `label_value` lets through no digit from anything
else: no card number, order id, session id, phone number or ticket id can become a
label. Pure (Kamailio's embedded interpreter imports it without prometheus_client).
"""

from __future__ import annotations

import re
from collections.abc import Collection

OTHER = "other"
NONE = "none"
# Letters first, then letters, '-', '_', '.', ':'; no digit anywhere, bounded length.
_SAFE = re.compile(r"[A-Za-z][A-Za-z_.:-]{0,47}")


def label_value(text: str | None, known: Collection[str] | None = None) -> str:
    """`text` as a label value, else `other` (`none` when there is nothing).

    With `known` (names from the config: merchants, flows, queues) only those pass;
    without, only a short identifier with no digit in it (codes, reasons, fields).
    """
    if not text:
        return NONE
    if known is not None:
        return text if text in known else OTHER
    return text if _SAFE.fullmatch(text) else OTHER
