"""A connect-then-close (the deploy's readiness probe) is quiet: no warning, no call."""

from __future__ import annotations

import asyncio
import logging

import pytest

from payivr.esl.server import OutboundServer


async def _never_called(conn: object) -> None:
    raise AssertionError("a port probe must not reach the call handler")


async def _probe_three_times() -> OutboundServer:
    server = OutboundServer(_never_called, host="127.0.0.1", port=0)
    await server.start()
    try:
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.close()
            await writer.wait_closed()
        for _ in range(50):  # the server side notices the close asynchronously
            if server.stats.probes == 3:
                break
            await asyncio.sleep(0.02)
    finally:
        await server.stop(grace_s=1.0)
    return server


def test_port_probe_leaves_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="payivr.esl")
    server = asyncio.run(_probe_three_times())
    assert server.stats.accepted == 3
    assert server.stats.probes == 3
    assert server.stats.failed == 0 and server.stats.caller_gone == 0
    loud = [r for r in caplog.records if r.levelno >= logging.INFO and "listening" not in r.msg]
    assert loud == []
    assert any("port probe" in r.getMessage() for r in caplog.records)
