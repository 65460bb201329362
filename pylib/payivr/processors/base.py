"""What every HTTP processor adapter does around its own wire format.

`HttpAdapter` holds the plumbing the generic connector and Redsys share: a retry of
an idempotency key answered in this process comes from memory (`AnswerMemo`) and is
never resent, a reversal forgets that answer (and is refused when the merchant turned
reversals off), the POST's transport failures become `failed`/`processor-error` with
a raw code that says whether a reversal is needed, a 5xx or other non-200 status is
read the same way, and every answer is logged in one format without card data.
Adapters supply `_charge` and `_reverse`: building their request, reading their answer.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Protocol

from payivr.core.processor import ChargeRequest, ProcessorAnswer
from payivr.core.reasons import Reason
from payivr.processors.memo import AnswerMemo
from payivr.processors.outcome import RAW_CONNECTION_LOST, RAW_HTTP_5XX, failed, needs_reversal
from payivr.processors.transport import HttpAnswer, TransportFailure, post


class SecretText(Protocol):
    """A resolved secret (payivr.core.configread.Secret): `value()` gives the text."""

    def value(self) -> str: ...


class AdapterSettings(Protocol):
    """The settings every adapter has, whatever else its processor needs."""

    @property
    def reverse_enabled(self) -> bool: ...

    @property
    def verify_tls(self) -> bool | str: ...


def status_failure(http: HttpAnswer) -> ProcessorAnswer | None:
    """`failed` for an answer whose HTTP status is not 200 (a 5xx may have charged and
    calls for a reversal), else None: the body is the adapter's to read."""
    if http.status >= 500:
        return failed(Reason.PROCESSOR_ERROR, RAW_HTTP_5XX)
    if http.status != 200:
        return failed(Reason.PROCESSOR_ERROR, f"payivr:http-{http.status}")
    return None


class HttpAdapter(ABC):
    """`Processor` plumbing shared by the HTTP adapters (see the module docstring)."""

    label: ClassVar[str]  # names the adapter in log lines: "connector", "redsys"
    log: ClassVar[logging.Logger]
    settings: AdapterSettings

    def __init__(self, memo: AnswerMemo | None = None) -> None:
        self._memo = memo if memo is not None else AnswerMemo()

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        """Run the request's operation; a retry of a key answered here is not resent."""
        remembered = self._memo.get(request.idempotency_key)
        if remembered is not None:
            self.log.info("%s retry answered from memory: order=%s", self.label, request.order)
            return remembered
        answer = self._charge(request)
        if not needs_reversal(answer):
            self._memo.put(request.idempotency_key, answer)
        return answer

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        """Void whatever the idempotency key may have charged."""
        self._memo.forget(request.idempotency_key)
        if not self.settings.reverse_enabled:
            return failed(Reason.PROCESSOR_ERROR, "payivr:reversal-disabled")
        return self._reverse(request)

    @abstractmethod
    def _charge(self, request: ChargeRequest) -> ProcessorAnswer:
        """Ask the processor (no answer for this key in memory)."""

    @abstractmethod
    def _reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        """Ask the processor to void (reversals enabled)."""

    def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], request: ChargeRequest
    ) -> HttpAnswer | ProcessorAnswer:
        """The POST's answer, or `failed` when it failed without one. A timeout raises
        ProcessorTimeout (charge_and_settle reverses)."""
        try:
            return post(
                url,
                body,
                headers=headers,
                timeout_s=request.timeout_s,
                verify=self.settings.verify_tls,
            )
        except TransportFailure as exc:
            self.log.warning(
                "%s transport failure: order=%s: %s", self.label, request.order, exc.kind
            )
            # Only a connection never opened cannot have charged.
            raw = RAW_CONNECTION_LOST if exc.may_have_arrived else f"payivr:{exc.kind}"
            return failed(Reason.PROCESSOR_ERROR, raw)

    def _logged(
        self, operation: str, request: ChargeRequest, answer: ProcessorAnswer
    ) -> ProcessorAnswer:
        """`answer`, once logged (codes and identifiers only)."""
        self.log.info(
            "%s %s: merchant=%s order=%s result=%s reason=%s raw=%s",
            self.label,
            operation,
            request.merchant,
            request.order,
            answer.code.value,
            answer.reason,
            answer.raw_code,
        )
        return answer
