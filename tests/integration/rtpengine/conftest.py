"""Fixtures: a real rtpengine (userspace, loopback) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.rtpengine.server import RtpengineServer, rtpengine_binary


@pytest.fixture(scope="module")
def rtpengine() -> Iterator[RtpengineServer]:
    if rtpengine_binary() is None:
        pytest.fail("rtpengine is not installed: `make apt` installs rtpengine-daemon")
    server = RtpengineServer().start()
    yield server
    server.stop()
