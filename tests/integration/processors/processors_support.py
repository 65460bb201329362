"""Helpers shared by the processor adapter suites: requests, cards, the card-data scan."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from payivr.core.processor import ChargeRequest, Operation
from tests.support import builders, pci

APPROVED_PAN = builders.VISA
EXPIRY_MMYY = builders.EXPIRY_MMYY  # keyed by the caller as MMYY
EXPIRY_YYMM = "3107"  # as Redsys wants it
CVV = builders.CVV


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


def find_card_data(text: str) -> list[str]:
    """The card-data patterns found in ``text`` (by pattern, never echoing the text)."""
    return pci.find_card_data(text, short=(EXPIRY_MMYY, EXPIRY_YYMM, CVV))


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
