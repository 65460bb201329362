"""What the driver tells the flow engine (frozen dataclasses).

The caller's hang-up is the capture plan's ``CallerHungUp`` (one event for both
engines: the executor tells whichever engine it runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from payivr.core.plan.events import CallerHungUp


@dataclass(frozen=True)
class KeysEntered:
    """The caller keyed ``digits`` (not card data) for a ``CollectKeys``."""

    digits: str

    def __repr__(self) -> str:
        # May be a PIN kept in a secure variable: the repr never shows it.
        return f"KeysEntered(<{len(self.digits)} keys>)"


@dataclass(frozen=True)
class NoInput:
    """Nothing was keyed before the timeout."""


@dataclass(frozen=True)
class HttpAnswered:
    """The connector's answer: ``status`` (2xx) and the decoded JSON body."""

    status: int
    body: object

    def __repr__(self) -> str:
        return f"HttpAnswered({self.status})"


@dataclass(frozen=True)
class HttpFailed:
    """The request failed: ``kind`` is timeout, unavailable, rejected or not-found."""

    kind: str
    status: int | None = None


@dataclass(frozen=True)
class QueueLeft:
    """The caller left the queue: ``outcome`` answered, abandoned (hung up while
    waiting) or timeout; ``wait_s`` seconds waited; ``hungup``: the call is over."""

    outcome: str
    wait_s: int
    hungup: bool


@dataclass(frozen=True)
class PaymentDone:
    """The ``pay`` activity's payment ended with SPEC result ``code`` (``reason``)."""

    code: str
    reason: str
    session: str
    hungup: bool


FlowEvent = (
    KeysEntered | NoInput | HttpAnswered | HttpFailed | QueueLeft | PaymentDone | CallerHungUp
)

__all__ = [
    "CallerHungUp",
    "FlowEvent",
    "HttpAnswered",
    "HttpFailed",
    "KeysEntered",
    "NoInput",
    "PaymentDone",
    "QueueLeft",
]
