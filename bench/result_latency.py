"""Benchmark: last keyed digit -> result stored and callback queued (issue 11, item 5).

The ESL application (in this process, as the tests run it) against a throw-away
redis-server and the fake FreeSWITCH of tests/esl/peer.py; N sale calls, C at a time,
with the sandbox processor (optionally behind a fixed delay standing in for a
gateway's response time). Every FreeSWITCH application answers at once except the
"processing" prompt, which lasts --hold-s, as the recorded prompt does.

Measured per call (wall clock, one host):
* result: from the end of the last card field (the CVV's last key) to the outbox
  entry's Redis id (the result, its session update and its callback are one
  transaction, so this is "stored and queued");
* baseline, same run: the old order, where the processor was asked only after the
  prompt = last key -> end of "processing" + the processor's own time; and the
  processor's own time alone.

Usage: .venv/bin/python bench/result_latency.py [--calls 200] [--concurrency 20]
       [--hold-s 2.0] [--processor-ms 0]
Target (issue 11): result p95 < 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.core.processor import ChargeRequest, Processor, ProcessorAnswer  # noqa: E402
from tests.esl.harness import EslHarness  # noqa: E402
from tests.esl.peer import CallScript, FakeCall, Keys  # noqa: E402
from tests.support.servers import RedisServer  # noqa: E402

PAN, EXPIRY, CVV = "4111111111111111", "1230", "737"
HOLD_PROMPT = "processing.wav"


class TimedCall(FakeCall):
    """The peer, noting when the last field ended and when the hold prompt ended."""

    def __init__(self, script: CallScript, hold_s: float) -> None:
        super().__init__(script)
        self.hold_s = hold_s
        self.collections = 0
        self.last_key_at: float | None = None  # time.time()
        self.hold_end_at: float | None = None

    async def _run_app(self, app: str, arg: str, event_uuid: str) -> None:
        hold = app == "playback" and arg.endswith("/" + HOLD_PROMPT)
        if hold:
            await asyncio.sleep(self.hold_s)
        await super()._run_app(app, arg, event_uuid)
        if app == "play_and_get_digits":
            self.collections += 1
            if self.collections == 3:
                self.last_key_at = time.time()
        if hold:
            self.hold_end_at = time.time()


class GatewayProcessor:
    """The sandbox behind a fixed response time; keeps each charge's own duration."""

    def __init__(self, inner: Processor, delay_s: float) -> None:
        self.inner = inner  # the merchant's configured sandbox
        self.delay_s = delay_s
        self.durations: dict[str, float] = {}  # by order

    def charge(self, request: ChargeRequest) -> ProcessorAnswer:
        started = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        answer = self.inner.charge(request)
        self.durations[request.order] = time.perf_counter() - started
        return answer

    def reverse(self, request: ChargeRequest) -> ProcessorAnswer:
        return self.inner.reverse(request)


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:7.1f}  p95 {cuts[94]:7.1f}  p99 {cuts[98]:7.1f}  max {ms[-1]:7.1f}"


async def one_call(h: EslHarness, hold_s: float, n: int) -> tuple[TimedCall, str, str]:
    session = h.new_session(order=f"L{n}", call_id=f"cc-{n}@127.0.0.1")
    headers = {"X-Pay-Merchant": "acme", "X-Pay-Order": f"L{n}", "X-Payivr-Session": session.id}
    script = CallScript(sip_headers=headers, inputs=[Keys(PAN + "#"), Keys(EXPIRY), Keys(CVV)])
    call = TimedCall(script, hold_s)
    await call.run("127.0.0.1", h.server.port, timeout=60)
    return call, session.id, f"L{n}"


async def run(calls: int, concurrency: int, hold_s: float, processor_ms: float) -> int:
    server = RedisServer().start()
    logging.getLogger("payivr").setLevel(logging.WARNING)
    try:
        h = EslHarness(server.url)
        processor = GatewayProcessor(h.services.processors["acme"], processor_ms / 1000)
        h.services.processors["acme"] = processor
        await h.start()
        done: list[tuple[TimedCall, str, str]] = []
        started = time.monotonic()
        for first in range(0, calls, concurrency):
            batch = range(first, min(first + concurrency, calls))
            done += await asyncio.gather(*(one_call(h, hold_s, n) for n in batch))
        await h.idle()
        elapsed = time.monotonic() - started
        queued_at = {
            fields["session_id"]: int(entry_id.split("-")[0]) / 1000
            for entry_id, fields in h.client.xrange("payivr:outbox")
        }
        await h.stop()
    finally:
        server.cleanup()
    result, old, own = [], [], []
    for call, session_id, order in done:
        took = processor.durations.get(order)
        last_key, hold_end = call.last_key_at, call.hold_end_at
        if last_key is None or hold_end is None or took is None or session_id not in queued_at:
            print(f"call for session {session_id} did not complete", file=sys.stderr)
            return 1
        result.append(queued_at[session_id] - last_key)
        # The old order asked the processor only once "processing" had ended.
        old.append(hold_end - last_key + took)
        own.append(took)
    print(
        f"{calls} calls, {concurrency} at a time, hold prompt {hold_s:.1f} s, "
        f"processor delay {processor_ms:.0f} ms, {elapsed:.1f} s"
    )
    print("last key -> result stored + callback queued (ms):")
    print(f"  payivr now (processor asked at once)    {percentiles(result)}")
    print(f"  baseline: old order (after the prompt)  {percentiles(old)}")
    print(f"  baseline: the processor's own time      {percentiles(own)}")
    p95 = statistics.quantiles(result, n=100, method="inclusive")[94]
    print(f"target p95 < 500 ms: {'met' if p95 < 0.5 else 'NOT met'} ({p95 * 1000:.1f} ms)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--hold-s", type=float, default=2.0)
    parser.add_argument("--processor-ms", type=float, default=0.0)
    args = parser.parse_args()
    return asyncio.run(run(args.calls, args.concurrency, args.hold_s, args.processor_ms))


if __name__ == "__main__":
    sys.exit(main())
