"""A real rtpengine (Debian's rtpengine-daemon) on loopback, userspace only, for tests.

`--table=-1`: no kernel forwarding table (the module is not loaded on test machines);
every packet goes through rtpengine's userspace path, the one that does the DTMF
masking anyway. Its log goes to a file the PCI search reads; the log options are
payivr's (payivr.media.settings.daemon_args), so the test runs what production runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from payivr.media.settings import RtpengineSettings, daemon_args
from payivr.stack.ports import free_udp_block
from tests.support.servers import free_port, stop_process


def rtpengine_binary() -> str | None:
    return shutil.which("rtpengine", path="/usr/bin:/usr/sbin:/usr/local/bin")


class RtpengineServer:
    def __init__(
        self,
        workdir: Path | None = None,
        port_min: int = 0,
        log_level: int = 6,
        port_count: int = 100,
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="payivr-rtpengine-"))
        self.ng_port = free_port(socket.SOCK_DGRAM)
        # Its media ports: a block no other rtpengine, worker or picker holds now.
        base = port_min or free_udp_block(port_count)
        self.settings = RtpengineSettings(
            ng_host="127.0.0.1",
            ng_port=self.ng_port,
            interface="127.0.0.1",
            port_min=base,
            port_max=base + port_count - 1,
            log_level=log_level,
        )
        self.log_path = self.workdir / "rtpengine.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RtpengineServer:
        binary = rtpengine_binary()
        if binary is None:
            raise RuntimeError("rtpengine is needed (apt-get install rtpengine-daemon)")
        argv = [binary, "--config-file=none", "--foreground", "--log-stderr",
                *daemon_args(self.settings)]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b"Startup complete" in self.log_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError("rtpengine did not start in 10 s")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU the daemon has used so far (from /proc)."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / 100.0
