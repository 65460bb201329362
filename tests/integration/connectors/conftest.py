"""Fixtures of the connector tests: a Zendesk-shaped server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_zendesk import FakeZendesk, seeded


@pytest.fixture()
def zendesk() -> Iterator[FakeZendesk]:
    fake = seeded().start()
    yield fake
    fake.stop()
