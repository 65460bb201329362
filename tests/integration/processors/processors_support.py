"""Helpers shared by the processor adapter suites: requests, cards, the card-data scan."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from payivr.core.processor import ChargeRequest, Operation
from tests.support import builders

APPROVED_PAN = builders.VISA
EXPIRY_MMYY = builders.EXPIRY_MMYY  # keyed by the caller as MMYY
EXPIRY_YYMM = "3107"  # as Redsys wants it
CVV = builders.CVV

SANDBOX_PANS = (
    APPROVED_PAN,
    "4000000000000002",
    "4000000000009995",
    "4000000000000069",
    "4000000000000119",
    "4000000000000127",
)


def charge_request(
    order: str,
    *,
    operation: Operation = Operation.SALE,
    pan: str = APPROVED_PAN,
    cvv: str | None = CVV,
    amount: int = 1250,
    token: str | None = None,
    timeout_s: float = 3.0,
    merchant: str = "acme",
) -> ChargeRequest:
    return builders.charge_request(
        order,
        operation=operation,
        pan=None if operation is Operation.TOKEN_SALE else pan,
        card_cvv=cvv,
        merchant=merchant,
        amount=0 if operation is Operation.TOKENIZE else amount,
        description="Tickets",
        timeout_s=timeout_s,
        token=token,
    )


def _patterns() -> list[re.Pattern[str]]:
    # The PAN in full or beyond its last four, the expiry both ways, the CVV as a
    # number of its own (not inside a port or a hex auth code).
    pats = []
    for pan in SANDBOX_PANS:
        pats.append(re.compile(re.escape(pan[:-4])))
    for secret in (EXPIRY_MMYY, EXPIRY_YYMM, CVV):
        pats.append(re.compile(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])"))
    return pats


CARD_PATTERNS = _patterns()


def find_card_data(text: str) -> list[str]:
    """The card-data patterns found in ``text`` (by pattern, never echoing the text)."""
    return [p.pattern for p in CARD_PATTERNS if p.search(text)]


@pytest.fixture()
def no_card_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Capture every log record at DEBUG (payivr, requests, urllib3) and, after the
    test, search them for card data. Tests append exception texts to the yielded list
    to have those searched too."""
    caplog.set_level(logging.DEBUG)
    extra_texts: list[str] = []
    yield extra_texts
    records = caplog.get_records("setup") + caplog.get_records("call")
    texts = [r.getMessage() for r in records]
    texts += [r.exc_text or "" for r in records]
    texts += extra_texts
    assert records, "nothing was logged: the scan would prove nothing"
    found = sorted({p for t in texts for p in find_card_data(t)})
    assert not found, f"card data in logs or exceptions: patterns {found}"
