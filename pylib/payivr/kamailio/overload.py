"""Early rejection under overload: how full is the UDP receive queue a request came in on.

Kamailio's UDP workers share one socket per listen address; whatever they cannot
process yet waits in that socket's kernel receive buffer. Past capacity the buffer
fills, the kernel drops datagrams at random (new INVITEs, but also the 200s, ACKs and
BYEs of calls already admitted), the callers retransmit and goodput collapses. So a
new payment INVITE is answered 503 + Retry-After at once while the queue it arrived on
holds more than SHED_FILL of its buffer: the backlog stays bounded, the calls already
admitted keep their messages, and the excess costs a stateless reply instead of an
admission (SIP overload control in the spirit of RFC 7339: bounded queue, early
rejection, the caller told when to retry).

The fill is read from the socket itself (SO_MEMINFO: bytes queued and buffer size),
one getsockopt per new INVITE. The worker inherited the socket from Kamailio's main
process; it is found once by the address the first request arrived on. TCP and TLS
listeners have no such shared queue: requests on them are never shed here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct

# Linux socket option: struct of u32 counters, the first two the bytes queued for
# reading (sk_rmem_alloc) and the receive buffer size (sk_rcvbuf).
SO_MEMINFO = 55
_MEMINFO = struct.Struct("=9I")
# Shed new calls when three quarters of the buffer are taken. The kernel gives back the
# memory of datagrams already read in batches of up to a quarter of the buffer while
# more are queued, so the reading overstates the backlog by up to 0.25: at 0.75, half
# to three quarters are really queued (on Kamailio's 512 KiB, 1 MiB accounted, buffer
# some 230-340 datagrams of ~2.3 KiB), the last quarter absorbs bursts of in-dialog
# traffic before the kernel would drop anything. Lower, a few hundred milliseconds
# without CPU on a shared host sheds calls the queue would have carried (measured:
# 0.5 shed 15% of 150 calls/s at load average 11 on 2 cores, where the native route
# lost none).
SHED_FILL = 0.75


def queue_fill(sock: socket.socket) -> float:
    """Bytes waiting in the socket's receive queue, as a fraction of its buffer."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size)
    queued, buffer = _MEMINFO.unpack(raw)[:2]
    return queued / buffer if buffer else 0.0


def inherited_udp_socket(address: tuple[str, int]) -> socket.socket | None:
    """The UDP socket of this process bound to (ip, port), or None (TCP, TLS, not found)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_DGRAM and sock.getsockname()[:2] == address:
                return sock  # kept open for the life of the worker, never closed
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sock.detach()  # not ours to close: Kamailio's descriptor
    return None


class ReceiveQueues:
    """Per worker: the fill of the UDP queue each request arrived on."""

    def __init__(self, shed_fill: float = SHED_FILL) -> None:
        self.shed_fill = shed_fill
        self._sockets: dict[tuple[str, int], socket.socket | None] = {}

    def overloaded(self, address: tuple[str, int]) -> bool:
        """True when new calls arriving on this listen address should be shed."""
        if address not in self._sockets:
            self._sockets[address] = inherited_udp_socket(address)
        sock = self._sockets[address]
        if sock is None:
            return False
        try:
            return queue_fill(sock) > self.shed_fill
        except OSError:
            return False
