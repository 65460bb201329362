"""kill -9 of the real `payivr esl serve` mid-capture: the session still ends with one
signed callback (SPEC 7), delivered by the real `payivr callbacks work`, whose
watchdog finalises the session once its deadline has passed.

The peer (tests/esl/peer.py) speaks FreeSWITCH's side of the outbound socket; it
does not run a dialplan, so no fallback BYE reaches Kamailio here: this is the case
of a call that ends with no BYE at all (tests/integration/kamailio covers the BYE,
tests/freeswitch the real engine).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml

from payivr.core.admission import Accept
from payivr.core.config import load_config
from payivr.core.config_types import Config
from payivr.core.orphan import WatchBudget
from payivr.core.processor import Operation
from payivr.core.request import PaymentRequest, ReturnTarget
from payivr.core.session import Session, SessionState, new_session_id
from payivr.core.signature import verify_callback
from payivr.kamailio.admission_store import AdmissionStore
from payivr.stack.receiver import CallbackReceiver, ReceivedCallback
from payivr.store import keys
from payivr.store.redis_store import RedisSessionStore
from tests.esl.peer import CallScript, Keys, run_call
from tests.support.servers import free_port, stop_process, wait_for_tcp

REPO = Path(__file__).resolve().parents[2]
# Short capture timeouts and processor budget: the watchdog step (the furthest a
# deadline goes past the application's last write) is then a few seconds.
BUDGET = WatchBudget(prompt_allowance_s=0.5, answer_allowance_s=2, margin_s=0.5)


def write_config(tmp_path: Path, redis_url: str) -> Path:
    raw = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    raw["services"]["redis"]["url"] = redis_url
    raw["services"]["esl"]["linger_s"] = 2
    acme = raw["merchants"]["acme"]
    acme["capture"]["field_timeout_ms"] = 2000
    acme["capture"]["digit_timeout_ms"] = 200
    acme["processor"] = {**acme.get("processor", {}), "timeout_s": 1}
    shutil.copy(REPO / "config" / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "payivr.cli", *argv], stdout=out, stderr=out, cwd=REPO
        )


def start_callbacks_worker(config_path: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The real `payivr callbacks work`, its watchdog sweeping every half second."""
    return start(
        ["callbacks", "work", "--config", str(config_path), "--watchdog-interval", "0.5",
         "--metrics-port", "0", "--concurrency", "2"],
        tmp_path / "callbacks.log",
    )  # fmt: skip


def failed_callback(
    receiver: CallbackReceiver, config: Config, tmp_path: Path, session_id: str, order: str
) -> ReceivedCallback:
    """The one signed callback the watchdog's result gives: failed, ivr-unavailable."""
    (callback,) = receiver.wait(1, timeout=40) or [None]
    assert callback is not None, (tmp_path / "callbacks.log").read_text()[-3000:]
    secret = config.merchants["acme"].callback_secret.encode()
    assert verify_callback(secret, callback.body, callback.headers["X-Payivr-Signature"])
    body = json.loads(callback.body)
    assert (body["session_id"], body["order"], body["amount"]) == (session_id, order, 4200)
    assert (body["result"], body["reason"]) == ("failed", "ivr-unavailable")
    return callback


def done_with_one_result(
    receiver: CallbackReceiver, client: redis.Redis, session_id: str
) -> Session:
    """After more sweeps and deliveries: still one callback, one result, nothing left."""
    time.sleep(2)
    assert len(receiver.received) == 1
    done = RedisSessionStore(client).load(session_id)
    assert done is not None and done.state is SessionState.DONE
    assert client.zcard(keys.INFLIGHT) == 0 and client.xlen(keys.OUTBOX) == 0
    outcome = [f for _id, f in client.xrange(keys.EVENTS) if f["event"] == "payment.result"]
    assert len(outcome) == 1
    return done


def field_events(client: redis.Redis, session_id: str) -> list[dict[str, str]]:
    return [
        f
        for _id, f in client.xrange(keys.EVENTS)
        if f["session"] == session_id and f["event"] == "field.completed"
    ]


@pytest.mark.timeout(90)
def test_kill_9_mid_capture_still_gives_one_signed_callback(redis_url: str, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, redis_url)
    config = load_config(config_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    receiver = CallbackReceiver().start()
    request = PaymentRequest(
        merchant="acme",
        operation=Operation.SALE,
        order="K9001",
        amount=4200,
        currency="EUR",
        language="en",
        return_to=ReturnTarget("hangup"),
        call_id="cc-kill-9@127.0.0.1",
        callback_url=receiver.url,
    )
    session_id = new_session_id()
    accept = Accept(request, config.merchants["acme"], replay_key=None, replay_ttl_s=0)
    AdmissionStore(client, 600, BUDGET).create_session(accept, session_id, time.time())

    port = free_port()
    esl = start(
        ["esl", "serve", "--config", str(config_path), "--port", str(port)], tmp_path / "esl.log"
    )
    worker = None
    try:
        wait_for_tcp(port, timeout=15)
        script = CallScript(
            sip_headers={"X-Pay-Merchant": "acme", "X-Payivr-Session": session_id},
            inputs=[Keys("4111111111111111#"), Keys("1230#"), Keys("123#")],
            app_delay_s=0.5,
        )
        peer = threading.Thread(target=lambda: asyncio.run(run_call(script, port, timeout=40)))
        peer.start()
        # Mid-capture: the card number is in, the expiry is being asked for.
        deadline = time.monotonic() + 20
        while not field_events(client, session_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert field_events(client, session_id), (tmp_path / "esl.log").read_text()[-3000:]
        esl.send_signal(signal.SIGKILL)
        esl.wait(10)
        killed_at = time.time()
        peer.join(45)

        store = RedisSessionStore(client)
        orphaned = store.load(session_id)
        assert orphaned is not None and orphaned.state is SessionState.CAPTURING
        assert orphaned.result is None and client.xlen(keys.OUTBOX) == 0
        deadline_at = client.zscore(keys.INFLIGHT, session_id)
        assert deadline_at is not None and deadline_at <= killed_at + BUDGET.step_s(
            config.merchants["acme"]
        )

        worker = start_callbacks_worker(config_path, tmp_path)
        callback = failed_callback(receiver, config, tmp_path, session_id, "K9001")
        assert time.time() >= deadline_at  # not before the call could have ended
        done = done_with_one_result(receiver, client, session_id)
        assert done.result is not None
        assert done.result.event_id == json.loads(callback.body)["event_id"]
    finally:
        stop_process(esl)
        stop_process(worker)
        receiver.stop()
        client.close()
