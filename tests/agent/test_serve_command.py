"""`payivr agent serve` as a process: config validation, then the API and the socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.agent.harness import ACME_TOKEN, make_config
from tests.support.servers import free_port, wait_for_tcp


def write_config(tmp_path: Path, redis_url: str, **agent: object) -> Path:
    config = make_config(tmp_path, redis_url)
    data = yaml.safe_load(yaml.safe_dump(dict(config.raw)))
    data["services"]["agent_api"].update(agent)
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_serve_runs_the_api_and_the_socket_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    http_port, esl_port = free_port(), free_port()
    path = write_config(tmp_path, redis_url, listen_port=http_port, esl_listen_port=esl_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "payivr.cli", "agent", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_tcp(http_port, 15)
        wait_for_tcp(esl_port, 5)
        base = f"http://127.0.0.1:{http_port}"
        assert requests.get(base + "/healthz", timeout=5).json() == {"ok": True}
        assert requests.get(base + "/v1/calls?agent=1", timeout=5).status_code == 401
        found = requests.get(
            base + "/v1/calls?agent=1",
            headers={"Authorization": f"Bearer {ACME_TOKEN}"},
            timeout=5,
        )
        assert found.status_code == 404 and found.json()["error"] == "call-not-found"
        assert "openapi: 3" in requests.get(base + "/openapi.yaml", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode(errors="replace")
    assert ACME_TOKEN.encode() not in out


def test_serve_refuses_a_bad_config_listing_every_problem(tmp_path: Path, redis_url: str) -> None:
    path = write_config(tmp_path, redis_url, dtmf_mask="beep", listen_port=0)
    done = subprocess.run(
        [sys.executable, "-m", "payivr.cli", "agent", "serve", "--config", str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "services.agent_api.dtmf_mask" in err and "services.agent_api.listen_port" in err
