"""The result on a BYE FreeSWITCH sends to the contact center (SPEC 7), made whole.

When the ESL application ends a call it records the result first, then hangs up with
the signed `X-Pay-*` headers: those are relayed as they are. When it could not be
reached or died mid-call, FreeSWITCH's dialplan fallback hangs up with unsigned
`failed` / `ivr-unavailable` headers naming the session. Those are never relayed:
Kamailio finalises the session (payivr.store.orphans: first writer wins, with the
outbox entry and `payment.result`), removes every `X-Pay-*` header of the BYE and
adds the session's result, signed with the merchant's secret and the dialog's
Call-ID (the contact center's: Kamailio is a proxy, both sides share it).

If Redis cannot be reached, the BYE goes on without result headers and the watchdog
finalises the session later (its callback still goes out).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from payivr.core.config import Config
from payivr.core.orphan import ByeAction, bye_action
from payivr.core.result import result_headers
from payivr.kamailio.sipmsg import mask_card_digits, payment_headers
from payivr.store.orphans import OrphanFinaliser


class ByeResults:
    """Rewrites the result headers of BYEs from FreeSWITCH nodes (one per worker)."""

    def __init__(self, ksr: Any, config: Config, finaliser: Callable[[], OrphanFinaliser]) -> None:
        self.ksr = ksr
        self.config = config
        self._finaliser = finaliser

    def rewrite(self) -> None:
        """Act on the BYE being routed (see the module docstring); never raises for
        Redis: the BYE must reach the contact center whatever happens here."""
        import redis

        ksr = self.ksr
        headers = payment_headers(ksr.kx.get_msgbuf())
        action, session_id = bye_action(headers)
        if action is ByeAction.RELAY:
            return
        for name in sorted({name for name, _ in headers}):
            ksr.hdr.remove(name)
        call_id = ksr.kx.get_callid()
        if session_id is None:
            ksr.warn(
                mask_card_digits(
                    f"payivr: unsigned result headers removed from a BYE, call-id={call_id}\n"
                )
            )
            return
        try:
            finalised = self._finaliser().finalise(session_id, datetime.now(UTC))
        except redis.RedisError as exc:
            ksr.err(
                f"payivr: could not finalise session {session_id} on its BYE "
                f"({type(exc).__name__}); the watchdog will\n"
            )
            return
        if finalised is None or finalised.session.result is None:
            ksr.warn(f"payivr: BYE for session {session_id}, which no longer exists\n")
            return
        result = finalised.session.result
        merchant = self.config.merchant(result.merchant)
        if merchant is None:
            ksr.err(f"payivr: session {session_id}: merchant no longer configured\n")
            return
        signed = result_headers(result, merchant.signing_secret.encode(), call_id, int(time.time()))
        ksr.hdr.append("".join(f"{name}: {value}\r\n" for name, value in signed))
        # Masked: a Call-ID may be any run of digits a CTI chose.
        ksr.info(
            mask_card_digits(
                f"payivr: session {session_id} result {result.code}"
                f"{'/' + result.reason if result.reason else ''} signed on the BYE"
                f"{' (recorded now)' if finalised.by_us else ''}, call-id={call_id}\n"
            )
        )
