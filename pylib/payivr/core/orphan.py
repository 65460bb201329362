"""Calls whose ESL application is gone before it recorded a result: orphans.

Every way a call can end must produce a signed result and a callback (SPEC 7). When
the ESL application dies mid-call, two things finish its session instead, with the
same `failed` / `ivr-unavailable` result and the same first-writer-wins transaction
as the application's own `record_result` (payivr.store.transactions):

* Kamailio, on the BYE FreeSWITCH's dialplan fallback sends (`bye_action`): that BYE
  carries unsigned `X-Pay-*` headers, which Kamailio replaces by the session's full
  signed result before relaying it to the contact center.
* the watchdog (payivr.watchdog), for calls that end with no BYE through Kamailio at
  all (a FreeSWITCH node that dies): every admitted session is on `payivr:inflight`,
  scored by the latest time its call could still be running. Each write the ESL
  application makes pushes that deadline to "now + one step" (`WatchBudget.step_s`):
  the longest a live application can go without writing anything for the session.

Pure: no Redis, no KSR. The adapters are payivr.store.orphans (Redis),
payivr.kamailio.bye (KEMI) and payivr.watchdog (the sweeper).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from payivr.core.config_types import MerchantConfig, WatchdogConfig
from payivr.core.reasons import Reason
from payivr.core.result import Outcome, PaymentResult, build_result
from payivr.core.session import Session

ORPHAN_REASON = Reason.IVR_UNAVAILABLE

# How long the ESL application waits for a processor that ignores its timeout: the
# charge, then the reversal, each on the merchant's timeout, and this grace.
PROCESSOR_GRACE_S = 1.0
# The longest DTMF entry the capture plan asks for (a 19-digit card number).
LONGEST_ENTRY_DIGITS = 19

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def settle_budget_s(timeout_s: float, grace_s: float = PROCESSOR_GRACE_S) -> float:
    """How long one processor call may take, with its possible reversal (the ESL
    application gives up after this: payivr.execution.processing)."""
    return 2 * timeout_s + grace_s


@dataclass(frozen=True)
class WatchBudget:
    """How far ahead the watchdog's deadline of a live call is set.

    `prompt_allowance_s` covers the prompts played between two writes (greeting,
    amount and the first field's prompt; a re-prompt and the field's prompt again);
    `answer_allowance_s` the time from admission until the ESL application's first
    write (FreeSWITCH answering, failover to a second node included); `margin_s`
    a slow host. Generous on purpose: a deadline that passes while the call is alive
    would end a live payment as `ivr-unavailable`.
    """

    prompt_allowance_s: float = 30.0
    answer_allowance_s: float = 60.0
    margin_s: float = 30.0

    @classmethod
    def from_config(cls, watchdog: WatchdogConfig) -> WatchBudget:
        """The budget of `services.watchdog`."""
        return cls(watchdog.prompt_allowance_s, watchdog.answer_allowance_s, watchdog.margin_s)

    def step_s(self, merchant: MerchantConfig) -> int:
        """The longest a live call goes without a write: one field's entry (every
        entry, good or bad, is a `field.completed` event) or the processor call."""
        capture = merchant.capture
        entry = (
            self.prompt_allowance_s
            + capture.field_timeout_ms / 1000
            + LONGEST_ENTRY_DIGITS * capture.digit_timeout_ms / 1000
        )
        processing = self.prompt_allowance_s + settle_budget_s(merchant.processor.timeout_s)
        return math.ceil(max(entry, processing) + self.margin_s)

    def admission_deadline(self, now: float, step_s: int) -> float:
        """The deadline written when Kamailio admits the call (before any write of
        the ESL application), for the merchant's `step_s`."""
        return now + self.answer_allowance_s + step_s


def orphan_result(
    session: Session, now: datetime, event_id: str, reason: Reason = ORPHAN_REASON
) -> PaymentResult:
    """The result recorded for a session whose ESL application is gone."""
    return build_result(
        session.request,
        session_id=session.id,
        event_id=event_id,
        created_at=session.created_at,
        completed_at=now,
        outcome=Outcome.failed(reason),
    )


class ByeAction(enum.Enum):
    """What Kamailio does with a BYE from a FreeSWITCH node."""

    RELAY = "relay"  # no result headers, or the ESL application's signed ones
    FINALISE = "finalise"  # unsigned result headers for a session: finalise, sign
    STRIP = "strip"  # unsigned result headers naming no session: remove them


def bye_action(headers: Iterable[tuple[str, str]]) -> tuple[ByeAction, str | None]:
    """Decide on a BYE from FreeSWITCH by its `X-Pay-*` headers (name, value).

    Signed headers come from the ESL application, which recorded the result before
    it hung up: they go on as they are. Unsigned ones come from the dialplan fallback
    (the application could not be reached or died): they are never relayed; the
    session they name is finalised and its result signed by Kamailio.
    """
    found = {name.lower(): value.strip() for name, value in headers}
    if not found or found.get("x-pay-signature"):
        return ByeAction.RELAY, None
    session_id = found.get("x-pay-session", "")
    if _SESSION_ID.match(session_id):
        return ByeAction.FINALISE, session_id
    return ByeAction.STRIP, None
