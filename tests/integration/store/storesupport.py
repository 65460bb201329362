"""Builders for store and callback tests: a request, a session, its result."""

from __future__ import annotations

from datetime import UTC, datetime

from payivr.core.processor import ResultCode
from payivr.core.request import PaymentRequest
from payivr.core.result import Outcome, PaymentResult, build_result
from payivr.core.session import Session, new_event_id
from tests.support.builders import payment_request

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def make_request(callback_url: str | None = None, order: str = "A1001") -> PaymentRequest:
    return payment_request(order=order, call_id=f"call-{order}@cti", callback_url=callback_url)


def make_session(callback_url: str | None = None, order: str = "A1001") -> Session:
    # Whole seconds: the session hash keeps ISO timestamps to the second.
    return Session.new(make_request(callback_url, order), datetime.now(UTC).replace(microsecond=0))


def approved(session: Session, last4: str = "1111") -> PaymentResult:
    outcome = Outcome(ResultCode.APPROVED, auth_code="123456", card_brand="visa", card_last4=last4)
    return build_result(
        session.request,
        session_id=session.id,
        event_id=new_event_id(),
        created_at=session.created_at,
        completed_at=datetime.now(UTC).replace(microsecond=0),
        outcome=outcome,
    )
