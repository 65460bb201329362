"""Two FreeSWITCH nodes (SIPp stand-ins) behind real Kamailio; one is killed (-9) under
10 concurrent calls.

Proven: every call gets exactly one signed callback (the killed node's calls a
`failed` / `ivr-unavailable` from the watchdog of the real `payivr callbacks work`,
within the configured deadline; the live node's calls the result its application
recorded), one outbox entry per session, the held calls all end, Kamailio ends each of
the dead node's calls with a BYE to the contact center (in-dialog keep-alive), the
dispatcher marks the dead node inactive within its probe threshold, and no INVITE reaches the dead
node's port after that: the next 10 calls all land on the live node.
"""

from __future__ import annotations

import time
from pathlib import Path

from payivr.core.config import load_config
from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from payivr.store.connect import redis_from_url
from tests.integration.callbacks.cbsupport import (
    endpoint_running,
    spawn_worker,
    stop_worker,
    wait_until,
)
from tests.integration.failover.failsupport import (
    ADMISSION_DEADLINE_S,
    DeadPort,
    failover_config,
    record_approved,
    results_by_session,
    sale_calls,
    start_uac,
    verified_callbacks,
    wait_inactive,
)
from tests.integration.kamailio.conftest import require_kamailio_and_sipp
from tests.integration.kamailio.kamsupport import SippUas, call_id, new_prefix
from tests.support.servers import RedisServer, free_port

PROBE_INTERVAL_S = 1
CALLS = 10
HOLD_MS = 55000
KEEPALIVE_S = 30  # the dialog module's minimum
FR_TIMER_S = 2
DIALOG_GRACE_S = 10  # the dialog module's lifetime after a failed keep-alive


def test_node_killed_under_calls(redis_server: RedisServer, tmp_path: Path) -> None:
    require_kamailio_and_sipp()
    client = redis_from_url(redis_server.url)
    client.flushall()
    node_a = SippUas("uas-freeswitch-answers", free_port(), tmp_path / "a").start()
    node_b = SippUas("uas-freeswitch-answers", free_port(), tmp_path / "b").start()
    uri_a, uri_b = f"sip:127.0.0.1:{node_a.port}", f"sip:127.0.0.1:{node_b.port}"
    config_path = failover_config(tmp_path, redis_url=redis_server.url, nodes=[uri_a, uri_b])
    port = free_port()
    dead: DeadPort | None = None
    worker = spawn_worker(config_path, tmp_path / "worker.log", "--watchdog-interval", "0.5")
    try:
        with (
            endpoint_running() as receiver,
            running_kamailio(
                load_config(config_path),
                listen=(Socket("udp", "127.0.0.1", port), Socket("tcp", "127.0.0.1", port)),
                runtime_dir=tmp_path / "kamailio",
                children=2,
                ds_ping_interval_s=PROBE_INTERVAL_S,
                dlg_ka_interval_s=KEEPALIVE_S,
            ),
        ):
            ctl = tmp_path / "kamailio" / "kamailio_ctl"
            prefix = new_prefix()
            wave1 = start_uac(
                port,
                sale_calls(prefix, CALLS, receiver.url),
                tmp_path,
                prefix=prefix,
                local_port=free_port(),
                hold_ms=HOLD_MS,
            )
            try:
                # All 10 answered and in progress, spread over both nodes: kill one.
                assert wait_until(
                    lambda: len(node_a.sessions()) + len(node_b.sessions()) >= CALLS, 10
                ), (node_a.sessions(), node_b.sessions(), wave1.explain())
                on_a, on_b = node_a.sessions(), node_b.sessions()
                assert on_a and on_b, "round-robin put calls on both nodes"
                assert node_a.proc is not None
                node_a.proc.kill()
                node_a.proc.wait(5)
                killed_at, killed_wall = time.monotonic(), time.time()
                dead = DeadPort(node_a.port)
                # Node B's application finishes its calls; node A's calls are orphans.
                record_approved(client, list(on_b.values()))
                inactive_after = wait_inactive(ctl, uri_a, 10)
                assert inactive_after is not None, "the dispatcher never marked the dead node"
                marked_at = time.monotonic()
                detected_s = marked_at - killed_at
                # Two missed probes (ds_probing_threshold 2), one interval apart, and
                # the time the second one takes to time out (fr_timer 2 s).
                assert detected_s <= 2 * PROBE_INTERVAL_S + FR_TIMER_S + 1.5, detected_s
                assert wave1.wait(HOLD_MS / 1000 + 20) == 0, wave1.explain()
            finally:
                wave1.stop()
            # Never silence: each call of the dead node was ended by Kamailio (BYE to
            # the contact center) once its keep-alive went unanswered; none on node B.
            ended = wave1.ended_by_proxy()
            assert set(ended) == set(on_a), (sorted(ended), sorted(on_a))
            bye_after = max(ended.values()) - killed_at
            # Each call's keep-alive is due KEEPALIVE_S after it was answered (the
            # 1 s timer), waits fr_timer (2 s) for an answer; its 408 leaves the
            # dialog 10 s before the BYE.
            assert bye_after <= KEEPALIVE_S + 1 + FR_TIMER_S + DIALOG_GRACE_S + 1.5, bye_after

            prefix2 = new_prefix()
            wave2 = start_uac(
                port,
                sale_calls(prefix2, CALLS, receiver.url),
                tmp_path,
                prefix=prefix2,
                local_port=free_port(),
                hold_ms=200,
            )
            try:
                assert wave2.wait(30) == 0, wave2.explain()
            finally:
                wave2.stop()
            on_b2 = {cid: sid for cid, sid in node_b.sessions().items() if cid.startswith(prefix2)}
            assert sorted(on_b2) == sorted(call_id(prefix2, n) for n in range(1, CALLS + 1))
            assert dead.invites_since(marked_at) == 0, "an INVITE went to the dead node"
            record_approved(client, list(on_b2.values()))

            # Every call: exactly one signed callback, one recorded result.
            everyone = {**on_a, **on_b, **on_b2}
            assert len(everyone) == 2 * CALLS
            assert wait_until(
                lambda: len(receiver.received) >= len(everyone),
                ADMISSION_DEADLINE_S + 10,
                0.1,
            ), (len(receiver.received), (tmp_path / "worker.log").read_text()[-3000:])
            time.sleep(1.5)  # a duplicate would come within the worker's lease
            delivered = verified_callbacks(receiver.received)
            by_session = {d.session_id: d for d in delivered}
            assert len(delivered) == len(by_session) == len(everyone)
            assert set(by_session) == set(everyone.values())
            for sid in on_a.values():
                assert (by_session[sid].result, by_session[sid].reason) == (
                    "failed",
                    "ivr-unavailable",
                )
            for sid in [*on_b.values(), *on_b2.values()]:
                assert by_session[sid].result == "approved"
            assert results_by_session(client) == {sid: 1 for sid in everyone.values()}
            assert client.xlen("payivr:outbox:dead") == 0
            assert client.zcard("payivr:inflight") == 0
            last_orphan = max(by_session[sid].at for sid in on_a.values())
            print(
                f"\nfailover: BYE to the contact center {bye_after:.2f}s after kill -9; "
                f"dead node inactive {detected_s:.2f}s after kill; "
                f"last orphan callback {last_orphan - killed_wall:.2f}s "
                f"after kill; {len(on_a)} orphaned, {len(on_b) + len(on_b2)} on the live node"
            )
    finally:
        stop_worker(worker)
        if dead is not None:
            dead.close()
        node_a.stop()
        node_b.stop()
        client.close()
