"""kill -9 of the real `payivr esl serve` while a flow's `pay` is capturing: the
payment session the flow created is on the watchdog's `payivr:inflight` like an
admitted one (payivr.store.admit_write), so the watchdog finalises it and the real
`payivr callbacks work` delivers one signed callback (SPEC 7).

The ESL application's default watchdog budget puts the deadline minutes away; the
test sweeps once at the deadline it finds (Watchdog.sweep(now)) instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml

from payivr.core.config import load_config
from payivr.core.session import SessionState
from payivr.stack.receiver import CallbackReceiver
from payivr.store import keys
from payivr.store.redis_store import RedisSessionStore
from payivr.watchdog import Watchdog
from tests.esl.peer import CallScript, Keys, run_call
from tests.esl.test_killed_application import (
    REPO,
    done_with_one_result,
    failed_callback,
    start,
    start_callbacks_worker,
)
from tests.support.pci import find_card_data
from tests.support.servers import free_port, stop_process, wait_for_tcp

PAY_FLOW = """
flow: pay-only
language: en
start: take
activities:
  take:
    type: pay
    merchant: acme
    amount: "4200"
    currency: EUR
    order: "F9001"
    callback_url: "{callback}"
    next: bye
  bye:
    type: hangup
"""


def write_config(tmp_path: Path, redis_url: str, callback: str) -> Path:
    raw = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    raw["services"]["redis"]["url"] = redis_url
    raw["services"]["esl"]["linger_s"] = 2
    raw["merchants"]["acme"]["capture"]["field_timeout_ms"] = 2000
    shutil.copy(REPO / "config" / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    flow = tmp_path / "pay-only.yaml"
    flow.write_text(PAY_FLOW.replace("{callback}", callback))
    raw["flows"] = {
        "files": [str(flow)],
        "sources": ["127.0.0.1/32"],
        "entry_points": {"billing": {"number": "8100", "flow": "pay-only"}},
    }
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def field_events(client: redis.Redis) -> list[dict[str, str]]:
    return [f for _id, f in client.xrange(keys.EVENTS) if f["event"] == "field.completed"]


@pytest.mark.timeout(90)
def test_kill_9_during_a_flow_payment_still_gives_one_signed_callback(
    redis_url: str, tmp_path: Path
) -> None:
    receiver = CallbackReceiver().start()
    config_path = write_config(tmp_path, redis_url, receiver.url)
    config = load_config(config_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    port = free_port()
    esl = start(
        ["esl", "serve", "--config", str(config_path), "--port", str(port)], tmp_path / "esl.log"
    )
    worker = None
    try:
        wait_for_tcp(port, timeout=15)
        script = CallScript(
            sip_headers={},
            inputs=[Keys("4111111111111111#"), Keys("1230#"), Keys("123#")],
            app_delay_s=0.5,
            caller_number="+34600111222",
            dialled="8100",
        )
        peer = threading.Thread(target=lambda: asyncio.run(run_call(script, port, timeout=40)))
        peer.start()
        deadline = time.monotonic() + 20
        while not field_events(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert field_events(client), (tmp_path / "esl.log").read_text()[-3000:]
        esl.send_signal(signal.SIGKILL)
        esl.wait(10)
        peer.join(45)

        (session_id,) = {f["session"] for f in field_events(client)}
        store = RedisSessionStore(client)
        orphaned = store.load(session_id)
        assert orphaned is not None and orphaned.state is SessionState.CAPTURING
        assert orphaned.result is None and client.xlen(keys.OUTBOX) == 0
        # On the watchdog's set, with the step the application's writes push it by.
        assert client.hget(keys.session_key(session_id), keys.WATCHDOG_STEP_FIELD)
        deadline_at = client.zscore(keys.INFLIGHT, session_id)
        assert deadline_at is not None, "the flow's payment session is not watched"

        assert Watchdog(client, config).sweep(deadline_at - 1).finalised == []
        assert Watchdog(client, config).sweep(deadline_at + 1).finalised == [session_id]
        worker = start_callbacks_worker(config_path, tmp_path)
        callback = failed_callback(receiver, config, tmp_path, session_id, "F9001")
        done_with_one_result(receiver, client, session_id)
        left = [(tmp_path / name).read_text() for name in ("esl.log", "callbacks.log")]
        left += [callback.body.decode(), json.dumps(callback.headers)]
        left += [json.dumps(f) for _id, f in client.xrange(keys.EVENTS)]
        left += [json.dumps(client.hgetall(keys.session_key(session_id)))]
        assert find_card_data("\n".join(left), short=("1230", "123")) == []
    finally:
        stop_process(esl)
        stop_process(worker)
        receiver.stop()
        client.close()
