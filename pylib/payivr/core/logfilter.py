"""A logging filter that masks PAN-like digit runs: the second line of defence.

The first line is that card data only ever lives in SecretDigits/CardDetails, whose
repr shows no digit. This filter catches what slips past anyway (a processor's error
text echoing a request, a developer's f-string): whatever the one card-number
detector (payivr.core.pan) finds is replaced before the record reaches a handler,
while identifiers (UUIDs, hex ids, Call-IDs, session ids) stay readable.
"""

from __future__ import annotations

import logging

from payivr.core.pan import mask_card_numbers

MASK = "[digits masked]"


def mask_digits(text: str) -> str:
    """Replace whatever could be a card number (payivr.core.pan) with MASK."""
    return mask_card_numbers(text, MASK)


class PanMaskingFilter(logging.Filter):
    """Rewrites a record's message (after %-formatting) and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not drop the record
            message = str(record.msg)
        masked = mask_digits(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            # Format once here so the handler prints the masked text, not the raw one.
            formatter = logging.Formatter()
            record.exc_text = mask_digits(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = mask_digits(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> PanMaskingFilter:
    """Attach the filter to the root logger's handlers and to the logger itself.

    Filters on a logger do not apply to records propagated from child loggers, so the
    filter also goes on every handler present now; `logging.basicConfig` callers
    should call this after configuring handlers.
    """
    target = logger or logging.getLogger()
    for existing in target.filters:
        if isinstance(existing, PanMaskingFilter):
            flt = existing
            break
    else:
        flt = PanMaskingFilter()
        target.addFilter(flt)
    for handler in target.handlers:
        if not any(isinstance(f, PanMaskingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
