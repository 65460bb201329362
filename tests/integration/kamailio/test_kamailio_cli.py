"""`payivr kamailio run` and `payivr kamailio defines` as an operator uses them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from payivr.kamailio.runner import sip_options_ok
from payivr.kamailio.settings import Socket
from tests.integration.kamailio.conftest import require_kamailio_and_sipp
from tests.integration.kamailio.kamsupport import write_config
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def payivr(*args: str) -> list[str]:
    return [sys.executable, "-m", "payivr.cli", *args]


def test_run_serves_on_the_given_port_and_stops_cleanly(tmp_path: Path, redis_url: str) -> None:
    require_kamailio_and_sipp()
    config = write_config(tmp_path, redis_url=redis_url, nodes=["sip:127.0.0.1:5080"])
    port = free_port()
    proc = subprocess.Popen(
        payivr(
            "kamailio",
            "run",
            "--config",
            str(config),
            "--udp",
            f"127.0.0.1:{port}",
            "--children",
            "1",
            "--runtime-dir",
            str(tmp_path / "rt"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not sip_options_ok(Socket("udp", "127.0.0.1", port)):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "kamailio never answered OPTIONS"
            time.sleep(0.2)
        assert (tmp_path / "rt" / "payivr-local.cfg").read_text().count("listen=") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    assert rc == 0
    assert not sip_options_ok(Socket("udp", "127.0.0.1", port))


def test_defines_writes_the_files_for_etc_kamailio(tmp_path: Path) -> None:
    config = write_config(tmp_path, redis_url="redis://127.0.0.1:1/0", nodes=["sip:10.0.0.5:5080"])
    out = tmp_path / "etc"

    done = subprocess.run(
        payivr(
            "kamailio",
            "defines",
            "--config",
            str(config),
            "--out",
            str(out),
            "--modules-dir",
            "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    local = (out / "payivr-local.cfg").read_text()
    assert '#!define PAYIVR_PYLIB ""' in local  # installed package: Debian's sys.path
    assert "listen=udp:127.0.0.1:5060" in local
    assert "sip:10.0.0.5:5080" in (out / "dispatcher.list").read_text()
