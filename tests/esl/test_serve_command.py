"""`payivr esl serve`: the real process, configured from YAML, answering a call."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.esl.peer import CallScript, run_call
from tests.support.servers import free_port, wait_for_tcp

REPO = Path(__file__).resolve().parents[2]


def test_serve_answers_a_call_and_stops_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    raw["services"]["redis"]["url"] = redis_url
    raw["services"]["esl"]["linger_s"] = 2
    shutil.copy(REPO / "config" / "secrets.example.yaml", tmp_path / "secrets.example.yaml")
    config = tmp_path / "payivr.yaml"
    config.write_text(yaml.safe_dump(raw))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "payivr.cli", "esl", "serve", "--config", str(config),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        wait_for_tcp(port, timeout=15)
        script = CallScript(sip_headers={"X-Pay-Merchant": "acme", "X-Payivr-Session": "gone"})
        call = asyncio.run(run_call(script, port, timeout=15))
        assert call.bye_headers is not None
        assert call.bye_headers["X-Pay-Result"] == "failed"
        assert call.bye_headers["X-Pay-Reason"] == "session-not-found"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"esl listening on" in err
