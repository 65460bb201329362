"""Overload: a backed-up receive queue sheds new payment calls with 503 + Retry-After.

Real Kamailio, SIPp and Redis. The overload is made, not raced: Kamailio's processes
are stopped (SIGSTOP) while INVITEs pile up in its UDP receive queue, SIPp's signed
sale lands in the middle of that backlog, then the processes continue. When a worker
reads SIPp's INVITE, more than three quarters of the buffer are still queued behind it.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.kamailio.conftest import stack_running
from tests.integration.kamailio.kamsupport import (
    Call,
    call_id,
    new_prefix,
    send_raw_invite,
    signed_sale,
)

pytestmark = pytest.mark.integration

# Unsigned INVITEs queued on either side of SIPp's: about 2.3 KiB of buffer each on
# loopback, so the ones behind it fill more than three quarters of Kamailio's 1 MiB (the rest
# the kernel drops: a full queue is the point).
BACKLOG_BEFORE = 40
BACKLOG_AFTER = 450


def invite_sent(trace: Path) -> bool:
    try:
        return "INVITE sip:" in trace.read_text(errors="replace")
    except FileNotFoundError:
        return False


def flood(port: int, prefix: str, count: int) -> None:
    for n in range(count):
        send_raw_invite(port, Call(["X-Pay-Merchant: acme"]), f"backlog-{prefix}-{n}@cti.test")


def test_a_backed_up_queue_answers_new_calls_503_with_retry_after(
    tmp_path: Path, redis_url: str
) -> None:
    with stack_running(tmp_path, redis_url) as stack:
        pids = [p for p in stack.kamailio.pids() if p != stack.kamailio.proc.pid]  # type: ignore[union-attr]
        prefix = new_prefix()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            flood(stack.port, prefix, BACKLOG_BEFORE)
            sent = tmp_path / "sipp-messages.log"
            with ThreadPoolExecutor(1) as pool:
                sipp = pool.submit(
                    stack.uac,
                    "uac-overloaded-expect-503",
                    [signed_sale(call_id(prefix))],
                    prefix,
                    extra=("-trace_msg", "-message_file", str(sent)),
                )
                # SIPp's INVITE is queued once SIPp's message trace shows it sent.
                deadline = time.monotonic() + 15
                while not invite_sent(sent) and time.monotonic() < deadline:
                    time.sleep(0.01)
                flood(stack.port, prefix + "b", BACKLOG_AFTER)
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
                pids = []
                result = sipp.result()
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

        assert result.returncode == 0, result.explain()
        assert "Kamailio: overloaded" in result.log
        assert "retry-after=7" in result.log.replace(" ", "")
        sessions = {stack.redis.hget(key, "call_id") for key in stack.session_keys()}
        assert call_id(prefix) not in sessions  # shed before anything was written
