"""Free loopback ports and readiness waits for the local stack.

A port is picked free now and bound later by another process (Kamailio, SIPp,
rtpengine ...), so two pickers running at once can be handed the same port. With
PAYIVR_PORT_RANGE=FIRST-LAST set, ports come from that range only, taken in turn from
a random starting point: the test suite gives each of its parallel workers its own
range above the kernel's ephemeral ports, so no other worker, and no outgoing
connection, takes a port between its pick and its bind. Unset, the kernel picks.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from functools import cache

PORT_RANGE_ENV = "PAYIVR_PORT_RANGE"


def port_range() -> range | None:
    """The ports PAYIVR_PORT_RANGE allows (FIRST-LAST, both included), or None."""
    raw = os.environ.get(PORT_RANGE_ENV, "")
    if not raw:
        return None
    first, _, last = raw.partition("-")
    if not (first.isdigit() and last.isdigit() and 1024 <= int(first) < int(last) <= 65535):
        raise ValueError(f"{PORT_RANGE_ENV}={raw!r}: must be FIRST-LAST with 1024 <= FIRST < LAST")
    return range(int(first), int(last) + 1)


class _Turns:
    """Hands out consecutive runs of `ports` in turn, from a random start, wrapping."""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self.position = ports.start + random.randrange(len(ports))

    def take(self, size: int) -> range:
        # A block starts even: SIPp and rtpengine pair RTP (even) with RTCP (odd).
        start = self.position + (self.position & 1 if size > 1 else 0)
        if start + size > self.ports.stop:
            start = self.ports.start + (self.ports.start & 1 if size > 1 else 0)
        self.position = start + size
        return range(start, start + size)


@cache
def _turns(ports: range) -> _Turns:
    return _Turns(ports)


def _bindable(port: int, kinds: tuple[int, ...]) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _from_range(ports: range, size: int, kinds: tuple[int, ...]) -> int:
    turns = _turns(ports)
    for _ in range(len(ports) // size):
        block = turns.take(size)
        if all(_bindable(port, kinds) for port in block):
            return block.start
    raise RuntimeError(f"no {size} free consecutive loopback port(s) in {PORT_RANGE_ENV}")


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (SIP listens on both)."""
    ports = port_range()
    if ports is not None:
        return _from_range(ports, 1, (socket.SOCK_STREAM, socket.SOCK_DGRAM))
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def wait_for_tcp(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on host:port, False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def free_udp_block(size: int = 4) -> int:
    """The first of `size` consecutive free UDP ports (SIPp's -mp takes audio and video
    RTP/RTCP pairs from its base port; rtpengine takes a whole media port range)."""
    ports = port_range()
    if ports is not None:
        return _from_range(ports, size, (socket.SOCK_DGRAM,))
    for _ in range(200):
        base = free_port() & ~1
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free block of loopback UDP ports")


def wait_for_listener(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> bool:
    """True once something has bound host:port, found without connecting to it.

    For servers that take every connection as real work (the ESL application treats a
    connection as a call from FreeSWITCH): a failing bind shows the listener is there.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # SO_REUSEADDR: this probe never stops the server from binding meanwhile
            # (two non-listening sockets with it may share a port); a listening one
            # still makes the bind fail, which is the answer.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return True
        time.sleep(0.05)
    return False
