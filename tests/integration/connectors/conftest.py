"""Fixtures of the connector tests: a Zendesk-shaped server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_zendesk import FakeZendesk


@pytest.fixture()
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk().start()
    fake.add_user(501, "Ana Caller", "+34 600 111 222", locale="es")
    fake.add_user(502, "Twin One", "+1 (513) 555-7611")
    fake.add_user(503, "Twin Two", "1-513-555-7611")
    # Ana's tickets, one in each status; the latest unresolved is 9003 (pending).
    for tid, status, updated in [
        (9001, "new", "2026-11-01T10:00:00Z"),
        (9002, "open", "2026-11-02T10:00:00Z"),
        (9003, "pending", "2026-11-05T10:00:00Z"),
        (9004, "hold", "2026-11-03T10:00:00Z"),
        (9005, "solved", "2026-11-06T10:00:00Z"),
        (9006, "closed", "2026-11-07T10:00:00Z"),
    ]:
        fake.add_ticket(tid, 501, status, updated)
    yield fake
    fake.stop()
