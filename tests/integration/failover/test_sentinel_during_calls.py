"""A Sentinel failover while calls are writing: no result lost.

A Redis primary, its replica and a Sentinel on loopback ports; payivr's clients built
from a config naming the Sentinel (payivr.store.connect, as every service builds
them). Ten calls in progress write the way the ESL application does (state changes,
then the result, each through `with_retries`: payivr.execution.store) while the
primary is killed (-9) and the Sentinel promotes the replica. Every call's result must
be recorded exactly once (one `payment.result`, one outbox entry, one callback from
the real `payivr callbacks work`, its signature verified), and the writes' stall is
measured against their retry budget.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from payivr.core.config import load_config
from payivr.core.session import SessionState
from payivr.execution import store as call_store
from payivr.execution.store import with_retries
from payivr.store.async_store import AsyncRedisSessionStore
from payivr.store.connect import async_redis_client, redis_client
from payivr.store.redis_store import RedisSessionStore
from tests.integration.callbacks.cbsupport import (
    endpoint_running,
    spawn_worker,
    stop_worker,
    wait_until,
)
from tests.integration.failover.failsupport import (
    failover_config,
    results_by_session,
    verified_callbacks,
)
from tests.integration.store.storesupport import approved, make_session
from tests.support.servers import free_port, stop_process, wait_for_tcp

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed"
)

CALLS = 10
DOWN_AFTER_MS = 500
# The writes' retry budget (payivr.execution.store).
RETRY_BUDGET_S = call_store.RETRY_FOR_S


def _redis(
    workdir: Path, name: str, lines: list[str], *args: str
) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    home = workdir / name
    home.mkdir()
    conf = home / "redis.conf"
    conf.write_text(
        "\n".join([f"port {port}", "bind 127.0.0.1", f"dir {home}", 'save ""', *lines]) + "\n"
    )
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", str(conf), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_tcp(port)
    return port, proc


def _role(client: redis.Redis) -> str | None:
    """The replication role of the node the Sentinel names, None while it names none."""
    try:
        return str(client.info("replication")["role"])
    except redis.ConnectionError:  # MasterNotFoundError included
        return None


async def _call(
    store: AsyncRedisSessionStore, session_id: str, started: float, stalls: list[float]
) -> str:
    """One call's writes after admission: capture states, processing, the result."""
    session = await with_retries(store.load, session_id)
    assert session is not None
    for state in (SessionState.CAPTURING, SessionState.PROCESSING):
        at = time.monotonic()
        session = await with_retries(store.set_state, session, state, datetime.now(UTC))
        stalls.append(time.monotonic() - at)
        await asyncio.sleep(0.3)
    at = time.monotonic()
    await with_retries(store.record_result, session, approved(session), datetime.now(UTC))
    stalls.append(time.monotonic() - at)
    return session_id


def test_sentinel_failover_during_calls_loses_no_result(tmp_path: Path) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    worker = None
    try:
        primary_port, primary = _redis(tmp_path, "redis-a", [])
        procs.append(primary)
        _, replica = _redis(tmp_path, "redis-b", [f"replicaof 127.0.0.1 {primary_port}"])
        procs.append(replica)
        sentinel_port, sentinel = _redis(
            tmp_path,
            "sentinel",
            [
                f"sentinel monitor payivr 127.0.0.1 {primary_port} 1",
                f"sentinel down-after-milliseconds payivr {DOWN_AFTER_MS}",
                "sentinel failover-timeout payivr 3000",
            ],
            "--sentinel",
        )
        procs.append(sentinel)
        section = {
            "url": "redis://ignored:6379/0",
            "sentinel": {"master": "payivr", "nodes": [f"127.0.0.1:{sentinel_port}"]},
        }
        with endpoint_running() as receiver:
            config_path = failover_config(
                tmp_path,
                redis_url="redis://ignored:6379/0",
                nodes=["sip:127.0.0.1:5080"],
                sentinel=section,
            )
            config = load_config(config_path)
            sync = redis_client(config.services.redis)
            assert wait_until(lambda: sync.info("replication")["connected_slaves"] == 1, 15)
            # Admitted calls: their sessions are in Redis before the failover.
            ids = []
            for n in range(CALLS):
                session = make_session(receiver.url, order=f"S{n:04d}")
                RedisSessionStore(sync).create(session)
                ids.append(session.id)
            # On the replica too, as a promoted replica must have them. Both waits are
            # checked: unchecked, a loaded machine's slow replica sync let WAIT answer 0,
            # the primary died with the sessions and a call found none (CI under xdist).
            assert wait_until(lambda: sync.wait(1, 500) == 1, 15), "the replica has not them"
            worker = spawn_worker(config_path, tmp_path / "worker.log", "--watchdog-interval", "0")

            stalls: list[float] = []

            async def calls() -> list[str]:
                client = async_redis_client(config.services.redis)
                store = AsyncRedisSessionStore(client)
                started = time.monotonic()
                tasks = [asyncio.create_task(_call(store, sid, started, stalls)) for sid in ids]
                await asyncio.sleep(0.15)  # every call has written once
                primary.kill()  # kill -9 mid-call
                primary.wait(5)
                done = await asyncio.gather(*tasks)
                await client.aclose()
                return done

            calls_started = time.monotonic()
            finished = asyncio.run(calls())
            assert sorted(finished) == sorted(ids)
            # The writes above prove a master was found; the Sentinel may still be
            # ending the failover (the old master listed as down), when a lookup
            # answers "no master" for a moment. Ask until it names the promoted one.
            assert wait_until(lambda: _role(sync) == "master", 15, 0.1), _role(sync)

            assert wait_until(lambda: len(receiver.received) >= CALLS, 20, 0.1), (
                len(receiver.received),
                (tmp_path / "worker.log").read_text()[-3000:],
            )
            time.sleep(1.0)  # a duplicate would come within the worker's lease
            delivered = verified_callbacks(receiver.received)
            assert sorted(d.session_id for d in delivered) == sorted(ids)
            assert {d.result for d in delivered} == {"approved"}
            assert results_by_session(sync) == {sid: 1 for sid in ids}
            assert sync.xlen("payivr:outbox:dead") == 0
            stall = max(stalls)
            assert stall < RETRY_BUDGET_S, stall
            print(
                f"\nsentinel failover: longest write {stall:.2f}s "
                f"(retry budget {RETRY_BUDGET_S:.1f}s), "
                f"10 calls done {time.monotonic() - calls_started:.2f}s after they started"
            )
    finally:
        if worker is not None:
            stop_worker(worker)
        for proc in reversed(procs):
            stop_process(proc)
