"""The processor call: a worker thread, the merchant's timeout, a caller who hangs up.

Processors are synchronous (payivr.core.processor); the call runs in a dedicated
thread pool so 500 calls waiting on processors never block the event loop. The
merchant's timeout is enforced here as well as in the adapter; on a timeout a reversal
is sent in the background (by idempotency key, without card data), since the late
request may still charge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

from payivr.core.processor import (
    ChargeRequest,
    Processor,
    ProcessorAnswer,
    ProcessorTimeout,
    ResultCode,
)
from payivr.esl.channel import CallChannel

log = logging.getLogger("payivr.esl")

# Extra time past the merchant's timeout before payivr stops waiting for an adapter
# that failed to honour ChargeRequest.timeout_s itself.
PROCESSOR_GRACE_S = 1.0


async def charge_with_timeout(
    processor: Processor,
    charge: ChargeRequest,
    pool: Executor,
    channel: CallChannel,
    on_hangup: Callable[[], object],
) -> ProcessorAnswer:
    """The processor's answer, or failed/processor-timeout.

    A caller hanging up meanwhile triggers `on_hangup` (the plan hears of it) and the
    answer is still awaited: money may move, so the truth is recorded.
    """
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(pool, _charge_in_thread, processor, charge)
    hangup = asyncio.ensure_future(_wait_hangup(channel))
    deadline = loop.time() + charge.timeout_s + PROCESSOR_GRACE_S
    try:
        waiting: set[asyncio.Future[Any]] = {work, hangup}
        done, _ = await asyncio.wait(
            waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
        )
        if work not in done and hangup in done:
            on_hangup()
            await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
        if work.done():
            return work.result()
    finally:
        hangup.cancel()
    log.warning("call %s: processor gave no answer in %.1fs", channel.uuid, charge.timeout_s)
    loop.run_in_executor(pool, _reverse_in_thread, processor, replace(charge, card=None))
    return ProcessorAnswer(ResultCode.FAILED, "processor-timeout")


def _charge_in_thread(processor: Processor, charge: ChargeRequest) -> ProcessorAnswer:
    try:
        return processor.charge(charge)
    except ProcessorTimeout:
        return ProcessorAnswer(ResultCode.FAILED, "processor-timeout")
    except Exception as exc:
        # The type only: an adapter's message could echo request fields.
        log.error("processor error: %s", type(exc).__name__)
        return ProcessorAnswer(ResultCode.FAILED, "processor-error")


def _reverse_in_thread(processor: Processor, charge: ChargeRequest) -> None:
    try:
        answer = processor.reverse(charge)
        log.info("reversal after timeout: %s", answer.code)
    except Exception as exc:
        log.error("reversal after timeout failed: %s", type(exc).__name__)


async def _wait_hangup(channel: CallChannel) -> None:
    wait = getattr(channel, "wait_hangup", None)
    if wait is not None:
        await wait()
        return
    while not channel.hungup:
        await asyncio.sleep(0.2)
