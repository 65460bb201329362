"""`payivr callbacks work --processes N`: N worker processes under one service.

One Python process delivers roughly one core's worth of callbacks (the GIL); a host
with more cores runs several, which the outbox's consumer group and leases make safe.
The supervisor starts them, restarts one that exits unexpectedly, and passes SIGTERM
on so that each finishes the deliveries in hand.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("payivr.callbacks")

RESTART_DELAY_S = 1.0
STOP_GRACE_S = 60.0


def supervise(child_argv: Callable[[int], list[str]], processes: int) -> int:
    """Run `processes` children (argv for child i from `child_argv(i)`) until SIGTERM."""
    stopping = threading.Event()
    children: dict[int, subprocess.Popen[bytes]] = {}

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(processes):
        children[i] = subprocess.Popen(child_argv(i))
    log.info("callback supervisor: %d worker processes", processes)
    while not stopping.is_set():
        for i, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping.is_set():
                log.warning("callback worker process %d exited (%s); restarting", i, code)
                time.sleep(RESTART_DELAY_S)
                children[i] = subprocess.Popen(child_argv(i))
        stopping.wait(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    log.info("callback supervisor stopped")
    return 0
