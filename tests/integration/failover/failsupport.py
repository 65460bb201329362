"""Support for the failover tests: a config with short watchdog timings, SIPp UAC runs
that hold calls, the dispatcher's view of a node, and the checks on results.

The watchdog timings are the product's (`services.watchdog`, the merchant's capture
and processor timeouts), shortened so that a dead node's calls get their result within
seconds: step = ceil(max(prompt + field timeout + 19 digit timeouts, prompt + 2 x
processor timeout + 1) + margin) = ceil(max(1 + 1 + 1.9, 1 + 1 + 1) + 1) = 5 s, and the
deadline set at admission is now + answer allowance (2 s) + step = now + 7 s.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
import yaml

from payivr.core.signature import verify_callback
from payivr.store import keys
from payivr.store.redis_store import RedisSessionStore
from tests.integration.kamailio.kamsupport import (
    SECRETS,
    Call,
    call_id,
    sale_fields,
    signed,
    sipp_binary,
    write_config,
    write_injection,
)
from tests.integration.store.storesupport import approved

HERE = Path(__file__).resolve().parent
HELD_CALL = HERE / "uac-sale-held-then-bye.xml"
CALLBACK_SECRET = SECRETS["acme_callback"].encode()
# The deadline set at admission (module docstring): the bound on a dead node's calls.
ADMISSION_DEADLINE_S = 7.0


def failover_config(
    directory: Path, *, redis_url: str, nodes: list[str], sentinel: dict[str, object] | None = None
) -> Path:
    """The Kamailio test config with the short watchdog budget and callbacks to loopback."""
    path = write_config(directory, redis_url=redis_url, nodes=nodes)
    data = yaml.safe_load(path.read_text())
    data["services"]["watchdog"] = {
        "answer_allowance_s": 2,
        "prompt_allowance_s": 1,
        "margin_s": 1,
    }
    if sentinel is not None:
        data["services"]["redis"] = sentinel
    acme = data["merchants"]["acme"]
    acme["capture"] = {"field_timeout_ms": 1000, "digit_timeout_ms": 100}
    acme["processor"]["timeout_s"] = 0.5
    acme["allow_private_callback_addresses"] = True
    path.write_text(yaml.safe_dump(data))
    return path


def sale_calls(prefix: str, count: int, callback_url: str, first: int = 1) -> list[Call]:
    """Signed acme sales for Call-IDs <prefix>-<first..first+count-1>@cti.test."""
    return [
        Call.of(
            signed(
                sale_fields(**{"X-Pay-Order": f"F{n:04d}", "X-Pay-Callback-Url": callback_url}),
                call_id(prefix, n),
            )
        )
        for n in range(first, first + count)
    ]


@dataclass
class UacRun:
    proc: subprocess.Popen[bytes]
    log: Path
    err: Path
    started: float  # time.monotonic() when SIPp was started

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout_s)

    def ended_by_proxy(self) -> dict[str, float]:
        """Call-ID -> when (s, this clock) Kamailio ended the call with a BYE to the
        contact center (SIPp logs its own clock in ms since it started)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        found = re.findall(r"ended-by-proxy call-id=(\S+) ms=(\d+)", text)
        return {cid: self.started + int(ms) / 1000 for cid, ms in found}

    def explain(self) -> str:
        read = lambda p: p.read_text(errors="replace")[-3000:] if p.exists() else ""  # noqa: E731
        return f"sipp exit {self.proc.returncode}\n--- errors\n{read(self.err)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_uac(
    target_port: int,
    calls: list[Call],
    workdir: Path,
    *,
    prefix: str,
    local_port: int,
    hold_ms: int,
    concurrent: int = 10,
    rate: int = 10,
) -> UacRun:
    """SIPp as the contact center: `len(calls)` calls held up to `hold_ms`, at most
    `concurrent` at once (-l), `rate` new calls a second (-r), in the background."""
    stem = f"held-{secrets.token_hex(3)}"
    inf = write_injection(workdir / f"{stem}.csv", calls)
    scenario = workdir / f"{stem}.xml"
    scenario.write_text(HELD_CALL.read_text().replace("HOLD_MS", str(hold_ms)))
    log, err = workdir / f"{stem}.log", workdir / f"{stem}.err"
    cmd = [
        sipp_binary(),
        f"127.0.0.1:{target_port}",
        "-sf",
        str(scenario),
        "-inf",
        str(inf),
        "-m",
        str(len(calls)),
        "-l",
        str(concurrent),
        "-r",
        str(rate),
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-t",
        "u1",
        "-nostdin",
        "-cid_str",
        f"{prefix}-%u@cti.test",
        "-timeout",
        f"{hold_ms // 1000 + 20}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(err),
        "-trace_logs",
        "-log_file",
        str(log),
        "-max_recv_loops",
        "1000",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return UacRun(proc, log, err, started)


def dispatcher_flags(ctl_socket: Path, node: str) -> str:
    """The dispatcher's flags for a node (`AP` active and probed, `IP` inactive ...)."""
    out = subprocess.run(
        ["kamcmd", "-s", f"unix:{ctl_socket}", "dispatcher.list"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout
    match = re.search(re.escape(f"URI: {node}") + r"\s+FLAGS: (\w+)", out)
    return match.group(1) if match else ""


def wait_inactive(ctl_socket: Path, node: str, timeout_s: float) -> float | None:
    """Seconds until the dispatcher marks `node` inactive (None: it did not)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if dispatcher_flags(ctl_socket, node).startswith("I"):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def record_approved(client: redis.Redis, session_ids: list[str]) -> None:
    """Play the ESL application of a live node: record an approved result for each
    session with the application's own store (first writer wins)."""
    store = RedisSessionStore(client)
    for sid in session_ids:
        session = store.load(sid)
        if session is None:
            raise AssertionError(f"session {sid} not in Redis")
        store.record_result(session, approved(session), datetime.now(UTC))


@dataclass
class Delivered:
    session_id: str
    result: str
    reason: str | None
    event_id: str
    at: float


def verified_callbacks(received: list[object]) -> list[Delivered]:
    """Every POST the receiver got, its signature checked with the merchant's secret."""
    out = []
    for r in received:
        body: bytes = r.body  # type: ignore[attr-defined]
        if not verify_callback(CALLBACK_SECRET, body, r.signature):  # type: ignore[attr-defined]
            raise AssertionError(f"callback with a bad signature: {body[:200]!r}")
        data = json.loads(body)
        out.append(
            Delivered(data["session_id"], data["result"], data["reason"], data["event_id"], r.at)  # type: ignore[attr-defined]
        )
    return out


def results_by_session(client: redis.Redis) -> dict[str, int]:
    """How many `payment.result` events each session has: one per recorded result (the
    same transaction adds the outbox entry, which the worker deletes once delivered)."""
    counts: dict[str, int] = {}
    for _, raw in client.xrange(keys.EVENTS):
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if fields.get("event") == "payment.result":
            counts[fields["session"]] = counts.get(fields["session"], 0) + 1
    return counts


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class DeadPort:
    """Takes a killed node's UDP port and answers nothing: what Kamailio still sends
    there (probes, in-dialog BYEs, and any INVITE it should no longer send) is seen."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.methods: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                data, _ = self.sock.recvfrom(65535)
                self.methods.append((time.monotonic(), data.split(b" ", 1)[0].decode()))

    def invites_since(self, since: float) -> int:
        return sum(1 for at, m in self.methods if at >= since and m == "INVITE")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()
