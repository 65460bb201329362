"""Free loopback ports and readiness waits for the local stack."""

from __future__ import annotations

import contextlib
import socket
import time


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (SIP listens on both)."""
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
    RTP/RTCP pairs from its base port)."""
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
