"""Running one processor call to a settled outcome: charge, and reverse when unsure.

The rule (issue 6): the caller is never told "approved" unless the processor said so.
When the charge's fate is unknown (timeout, lost connection, an answer that is
malformed or whose signature does not verify) the answer is `failed` and payivr
immediately asks the processor to void whatever it may have done; the reversal's
outcome goes on the session for operators (`SettledCharge.session_fields()`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from payivr.core.processor import (
    ChargeRequest,
    Processor,
    ProcessorAnswer,
    ProcessorTimeout,
    ResultCode,
)
from payivr.core.reasons import Reason

log = logging.getLogger("payivr.processors")

# raw_code values payivr itself sets when the processor's answer cannot be trusted or
# never came; the processor may have charged, so these call for a reversal.
RAW_TIMEOUT = "payivr:timeout"
RAW_BAD_SIGNATURE = "payivr:bad-response-signature"
RAW_MALFORMED = "payivr:malformed-response"
RAW_CONNECTION_LOST = "payivr:connection-lost"
RAW_HTTP_5XX = "payivr:http-5xx"
# An adapter that raised instead of answering (a bug): the request may have left.
RAW_ADAPTER_ERROR = "payivr:adapter-error"
AMBIGUOUS_RAW_CODES = frozenset(
    {
        RAW_TIMEOUT,
        RAW_BAD_SIGNATURE,
        RAW_MALFORMED,
        RAW_CONNECTION_LOST,
        RAW_HTTP_5XX,
        RAW_ADAPTER_ERROR,
    }
)


def failed(reason: Reason, raw_code: str | None) -> ProcessorAnswer:
    """A `failed` answer (never carries an auth code or token)."""
    return ProcessorAnswer(ResultCode.FAILED, reason, None, None, raw_code)


def needs_reversal(answer: ProcessorAnswer) -> bool:
    """True when the processor may have charged although payivr reports a failure."""
    return answer.code is ResultCode.FAILED and answer.raw_code in AMBIGUOUS_RAW_CODES


@dataclass(frozen=True)
class SettledCharge:
    """The answer to report, and the reversal attempted after an uncertain charge."""

    answer: ProcessorAnswer
    reversal: ProcessorAnswer | None = None

    @property
    def reversal_status(self) -> str:
        """`not-needed`, `reversed` (or nothing to reverse) or `reversal-failed`."""
        if self.reversal is None:
            return "not-needed"
        return "reversed" if self.reversal.code is ResultCode.APPROVED else "reversal-failed"

    def session_fields(self) -> dict[str, str]:
        """Operator-only fields for the session hash (raw codes; never card data)."""
        fields = {"processor_raw_code": self.answer.raw_code or ""}
        if self.reversal is not None:
            fields["reversal"] = self.reversal_status
            fields["reversal_raw_code"] = self.reversal.raw_code or ""
        return fields


def charge_and_settle(processor: Processor, request: ChargeRequest) -> SettledCharge:
    """Charge; on a timeout or an untrustworthy answer, report `failed` and reverse.

    A timeout is reported as `failed`/`processor-timeout`; an adapter that raises
    anything else as `failed`/`processor-error` (and reversed too: its request may have
    left). The reversal gets its own `request.timeout_s`; its failure is recorded,
    never raised.
    """
    try:
        answer = processor.charge(request)
    except ProcessorTimeout:
        answer = failed(Reason.PROCESSOR_TIMEOUT, RAW_TIMEOUT)
    except Exception as exc:
        # The type only: an adapter's message could echo request fields.
        log.error("processor error: %s", type(exc).__name__)
        answer = failed(Reason.PROCESSOR_ERROR, RAW_ADAPTER_ERROR)
    if answer.code is ResultCode.APPROVED or not needs_reversal(answer):
        return SettledCharge(answer)
    log.warning(
        "charge outcome unknown, reversing: merchant=%s order=%s raw=%s",
        request.merchant,
        request.order,
        answer.raw_code,
    )
    try:
        reversal = processor.reverse(request)
    except ProcessorTimeout:
        reversal = failed(Reason.PROCESSOR_TIMEOUT, RAW_TIMEOUT)
    except Exception as exc:  # a reversal must never turn into an unhandled error
        reversal = failed(Reason.PROCESSOR_ERROR, f"payivr:{type(exc).__name__}")
    log.warning(
        "reversal %s: merchant=%s order=%s raw=%s",
        "done" if reversal.code is ResultCode.APPROVED else "failed",
        request.merchant,
        request.order,
        reversal.raw_code,
    )
    return SettledCharge(answer, reversal)
