"""Benchmark on the real engine: last keyed digit -> result stored, -> callback received.

Issue 11, item 5, measured with a real FreeSWITCH (FREESWITCH_BIN or `freeswitch` on
PATH): the local stack (`stack up`: Redis, Kamailio, FreeSWITCH, the ESL application,
the callback worker) with the example config, N keyed sale calls one after the
other, placed through Kamailio by SIPp as `payivr demo` places them (sandbox card
4111..., RFC 2833 keys), the sandbox processor, callbacks to a local receiver.

The last keyed digit, two ways:
* sent: when SIPp sent the last RFC 2833 end packet of the CVV's last key (the ACK's
  time in SIPp's message trace + that packet's offset in the caller pcap, which SIPp
  starts playing right after the ACK);
* heard: FreeSWITCH's own time of the CHANNEL_EXECUTE_COMPLETE of the CVV's
  play_and_get_digits (Event-Date-Timestamp), i.e. when the engine had the digit
  (an inbound event-socket client subscribed to that event only; it keeps the
  timestamps and nothing else of the event).
The result stored: the id of the `payment.result` entry of `payivr:events` (written
in the result's transaction, Redis' clock); the callback received: when the local
receiver had read its body.

Usage: FREESWITCH_BIN=/opt/freeswitch/bin/freeswitch \\
       .venv/bin/python bench/freeswitch_result_latency.py [--calls 10]
Target (issue 11): last digit -> result stored p95 < 500 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

import redis  # noqa: E402

from payivr.core.config import load_config  # noqa: E402
from payivr.stack.demo_freeswitch import start_keyed_call  # noqa: E402
from payivr.stack.receiver import CallbackReceiver  # noqa: E402
from payivr.stack.rtp_pcap import EVENT_PT, rtp_packets  # noqa: E402
from payivr.stack.sipp import received_bye_headers  # noqa: E402
from payivr.stack.up import find_freeswitch, stack_down, stack_up  # noqa: E402
from tests.freeswitch.inbound import InboundSocket  # noqa: E402

EXAMPLE_CONFIG = REPO / "config" / "payivr.example.yaml"
PAN = "4111111111111111"
TRACE_RULE = "-" * 47 + " "


class CollectionTimes:
    """FreeSWITCH's time of each play_and_get_digits that completed, per channel."""

    def __init__(self, port: int, password: str) -> None:
        self.ends: list[float] = []  # time.time() scale, in arrival order
        self._socket = InboundSocket(port, password)
        self._socket.subscribe("CHANNEL_EXECUTE_COMPLETE", read_timeout=0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _, body = self._socket.read()
            except TimeoutError:
                continue
            except OSError:
                return
            # Only two headers are looked at; the rest of the event (which carries the
            # collected digits) is dropped at once.
            application = stamp = ""
            for line in body.split("\n"):
                if line.startswith("Application: "):
                    application = unquote(line[len("Application: ") :])
                elif line.startswith("Event-Date-Timestamp: "):
                    stamp = line[len("Event-Date-Timestamp: ") :]
            del body
            if application == "play_and_get_digits" and stamp:
                self.ends.append(int(stamp) / 1e6)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._socket.close()


def ack_sent_at(messages: Path) -> float:
    """When SIPp sent the ACK (its message trace stamps each message, local time)."""
    stamp = None
    for line in messages.read_text(errors="replace").splitlines():
        if line.startswith(TRACE_RULE):
            stamp = line[len(TRACE_RULE) :].strip()
        elif line.startswith("ACK ") and stamp:
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    raise RuntimeError(f"no ACK in {messages}")


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:6.0f}  p95 {cuts[94]:6.0f}  min {ms[0]:6.0f}  max {ms[-1]:6.0f}"


def run(calls: int, binary: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="payivr-fs-latency-"))
    state = stack_up(EXAMPLE_CONFIG, workdir / "stack", freeswitch=binary)
    receiver = CallbackReceiver().start()
    times: CollectionTimes | None = None
    rows: list[tuple[float, float, float, float]] = []
    try:
        config = load_config(Path(state.config))
        merchant = config.merchant("acme")
        if merchant is None:
            raise RuntimeError("the example config has no merchant acme")
        es = config.services.esl.event_socket
        password = es.password
        secret = password.value() if hasattr(password, "value") else str(password)
        times = CollectionTimes(es.port, secret)
        store = redis.Redis(port=state.ports["redis"], decode_responses=True)
        for n in range(calls):
            call = start_keyed_call(
                state.ports["kamailio"],
                config,
                merchant,
                workdir / f"sipp-{n}",
                card=PAN,
                callback_url=receiver.url,
                timeout_s=60,
            )
            rc = call.uac.wait(65)
            call.uac.stop()
            if rc != 0:
                print(call.uac.explain()[-3000:], file=sys.stderr)
                return 1
            bye = dict(received_bye_headers(call.uac))
            session_id = bye["X-Pay-Session"]
            callbacks = receiver.wait(n + 1, 15)
            got = [c for c in callbacks if session_id.encode() in c.body]
            stored = [
                int(entry_id.split("-")[0]) / 1000
                for entry_id, fields in store.xrange("payivr:events")
                if fields.get("event") == "payment.result" and fields.get("session") == session_id
            ]
            if not got or not stored or len(times.ends) < 3:
                print(f"call {n}: no callback, result or collections", file=sys.stderr)
                return 1
            last_end = max(
                p.time_s for p in rtp_packets(call.keyings, 120) if p.payload_type == EVENT_PT
            )
            sent = ack_sent_at(call.uac.messages) + last_end
            heard = times.ends[-1]  # the CVV's, the last collection of this call
            rows.append((sent, heard, stored[0], got[0].received_at))
            print(
                f"call {n + 1}: {bye.get('X-Pay-Result')}; sent->stored "
                f"{(stored[0] - sent) * 1000:.0f} ms, heard->stored "
                f"{(stored[0] - heard) * 1000:.0f} ms, sent->callback "
                f"{(got[0].received_at - sent) * 1000:.0f} ms",
                flush=True,
            )
    finally:
        if times is not None:
            times.close()
        receiver.stop()
        stack_down(workdir / "stack")
    print(f"{calls} calls through Kamailio and FreeSWITCH {binary}, one at a time (ms):")
    print(f"  last key sent  -> result stored     {percentiles([r[2] - r[0] for r in rows])}")
    print(f"  last key sent  -> callback received {percentiles([r[3] - r[0] for r in rows])}")
    print(f"  last key heard -> result stored     {percentiles([r[2] - r[1] for r in rows])}")
    print(f"  last key heard -> callback received {percentiles([r[3] - r[1] for r in rows])}")
    p95 = statistics.quantiles([r[2] - r[0] for r in rows], n=100, method="inclusive")[94]
    print(f"target p95 < 500 ms (sent -> stored): {'met' if p95 < 0.5 else 'NOT met'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    binary = find_freeswitch()
    if binary is None:
        print("no FreeSWITCH: set FREESWITCH_BIN or put freeswitch on PATH", file=sys.stderr)
        return 2
    return run(args.calls, binary)


if __name__ == "__main__":
    sys.exit(main())
