"""Fixtures of the callback tests: a config on the test's Redis, an endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.callbacks.cbsupport import Endpoint, endpoint_running, write_config


@pytest.fixture()
def config_path(tmp_path: Path, redis_url: str) -> Path:
    return write_config(tmp_path, redis_url)


@pytest.fixture()
def endpoint() -> Iterator[Endpoint]:
    with endpoint_running() as ep:
        yield ep
