"""The payment session of SPEC section 5 and the store interface its adapters implement.

A session holds the validated request, its state, its result and timestamps: never a
PAN, expiry, CVV or keyed digit (the types that hold those have no place here).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from payivr.core.processor import Operation
from payivr.core.request import PaymentRequest, ReturnTarget
from payivr.core.result import PaymentResult, iso
from payivr.core.speech_input import InputMode


class SessionState(StrEnum):
    CREATED = "created"
    CAPTURING = "capturing"
    PROCESSING = "processing"
    DONE = "done"
    RETURNED = "returned"


class Event(StrEnum):
    """Names on the `payivr:events` stream (SPEC section 5)."""

    SESSION_CREATED = "session.created"
    CAPTURE_STARTED = "capture.started"
    FIELD_COMPLETED = "field.completed"
    PAYMENT_PROCESSING = "payment.processing"
    PAYMENT_RESULT = "payment.result"
    CALL_RETURNED = "call.returned"
    SESSION_CLOSED = "session.closed"


def new_session_id() -> str:
    """128 random bits, URL-safe (SPEC section 5): 26 characters of lowercase base32.

    Not base64url: its ids can begin with "-", which every CLI takes for an option
    (`payivr callbacks replay -Itu...`), and they are easier to read out over a phone.
    """
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(16)


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    id: str
    request: PaymentRequest
    state: SessionState
    created_at: datetime
    updated_at: datetime
    result: PaymentResult | None = None

    @classmethod
    def new(cls, request: PaymentRequest, now: datetime, session_id: str | None = None) -> Session:
        return cls(
            id=session_id or new_session_id(),
            request=request,
            state=SessionState.CREATED,
            created_at=now,
            updated_at=now,
        )

    def with_state(self, state: SessionState, now: datetime) -> Session:
        return replace(self, state=state, updated_at=now)

    def to_hash(self) -> dict[str, str]:
        """Flat string fields for the Redis hash; absent values are left out."""
        r = self.request
        fields: dict[str, str | None] = {
            "id": self.id,
            "state": str(self.state),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "merchant": r.merchant,
            "operation": str(r.operation),
            "order": r.order,
            "amount": str(r.amount),
            "currency": r.currency,
            "language": r.language,
            "return": r.return_to.kind,
            "return_uri": r.return_to.uri,
            "call_id": r.call_id,
            "token": r.token,
            "callback_url": r.callback_url,
            "agent": r.agent,
            "description": r.description,
            "timestamp": str(r.timestamp) if r.timestamp is not None else None,
            # Only when not the keypad: keyed sessions stay exactly as before.
            "input": str(r.input_mode) if r.input_mode is not InputMode.DTMF else None,
            "result": self.result.to_json() if self.result else None,
        }
        return {k: v for k, v in fields.items() if v is not None}

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Session:
        """Inverse of to_hash; accepts redis-py's bytes mapping as it comes."""
        h = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        kind = h.get("return", "hangup")
        if kind not in ("hangup", "agent", "uri"):
            raise ValueError(f"session has an unknown return kind {kind!r}")
        request = PaymentRequest(
            merchant=h["merchant"],
            operation=Operation(h["operation"]),
            order=h["order"],
            amount=int(h["amount"]),
            currency=h["currency"],
            language=h["language"],
            return_to=ReturnTarget(kind, h.get("return_uri")),  # type: ignore[arg-type]
            call_id=h["call_id"],
            token=h.get("token"),
            callback_url=h.get("callback_url"),
            agent=h.get("agent"),
            description=h.get("description"),
            timestamp=int(h["timestamp"]) if h.get("timestamp") else None,
            input_mode=InputMode(h.get("input", InputMode.DTMF.value)),
        )
        result = PaymentResult.from_json(h["result"]) if h.get("result") else None
        return cls(
            id=h["id"],
            request=request,
            state=SessionState(h["state"]),
            created_at=parse_iso(h["created_at"]),
            updated_at=parse_iso(h["updated_at"]),
            result=result,
        )


def event_fields(name: Event, session: Session, now: datetime, **extra: str) -> dict[str, str]:
    """One entry of the `payivr:events` stream: never digits, only names and verdicts."""
    return {
        "event": str(name),
        "session": session.id,
        "merchant": session.request.merchant,
        "order": session.request.order,
        "at": iso(now),
        **extra,
    }


class SessionStore(Protocol):
    """What the ESL application and Kamailio need from the session storage."""

    def create(self, session: Session, ttl_s: int) -> None: ...

    def load(self, session_id: str) -> Session | None: ...

    def set_state(self, session: Session, state: SessionState, now: datetime) -> Session: ...

    def record_result(self, session: Session, result: PaymentResult, now: datetime) -> Session:
        """Atomically: result on the session, state done, outbox entry, payment.result.

        First writer wins: when a result is recorded already, nothing is written and
        the session returned carries that result."""
        ...

    def append_event(self, name: Event, session: Session, now: datetime, **fields: str) -> None: ...
