"""tcpdump on loopback for the tests that prove what travels encrypted."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Capture:
    """The capture file, and tcpdump's counts once it has stopped ("captured",
    "received by filter", "dropped by kernel")."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)


@contextmanager
def loopback_capture(bpf_filter: str, out: Path, max_packets: int = 20000) -> Iterator[Capture]:
    """Capture what matches `bpf_filter` on `lo` into `out` (bounded by `max_packets`),
    flushed and stopped at the end; skipped with the reason where tcpdump cannot run.

    --immediate-mode: without it packets wait in the capture ring's blocks and the
    ones still there when tcpdump is stopped are never written.
    """
    binary = shutil.which("tcpdump", path="/usr/sbin:/usr/bin")
    if binary is None:
        pytest.skip("tcpdump is needed for the packet capture (apt-get install tcpdump)")
    argv = [binary, "-i", "lo", "--immediate-mode", "-U", "-w", str(out), "-c", str(max_packets)]
    proc = subprocess.Popen([*argv, bpf_filter], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # tcpdump says "listening on lo" once packets are being captured: wait for it.
    assert proc.stderr is not None
    banner = proc.stderr.readline().decode(errors="replace")
    if "listening on" not in banner:
        proc.kill()
        proc.wait(5)
        pytest.skip(f"tcpdump cannot capture here: {banner.strip()}")
    capture = Capture(out)
    try:
        yield capture
    finally:
        time.sleep(0.5)
        proc.terminate()
        _, tail = proc.communicate(timeout=5)
        for count, what in re.findall(rb"(\d+) packets? ([a-z ]+)", tail):
            capture.counts[what.decode().strip()] = int(count)
