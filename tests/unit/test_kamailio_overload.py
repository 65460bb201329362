"""payivr.kamailio.overload against real loopback UDP sockets (Linux SO_MEMINFO)."""

from __future__ import annotations

import socket

from payivr.kamailio.overload import ReceiveQueues, inherited_udp_socket, queue_fill


def bound_udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_fill_grows_with_queued_datagrams_and_drops_when_read() -> None:
    with bound_udp() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        assert queue_fill(receiver) == 0.0
        for _ in range(10):
            sender.sendto(b"x" * 900, receiver.getsockname())
        full = queue_fill(receiver)
        assert 0.0 < full < 1.0
        for _ in range(10):
            receiver.recv(2048)
        assert queue_fill(receiver) == 0.0  # all read: the kernel released it all


def test_finds_the_process_socket_by_address_without_taking_it_over() -> None:
    with bound_udp() as receiver:
        found = inherited_udp_socket(receiver.getsockname())
        assert found is not None
        assert found.fileno() == receiver.fileno()
        assert inherited_udp_socket(("127.0.0.1", 1)) is None
        found.detach()  # the test's own socket closes it
        receiver.getsockname()  # still open: the scan detached what it did not return


def test_sheds_only_past_the_threshold() -> None:
    with bound_udp() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        queues = ReceiveQueues(shed_fill=0.75)
        address = receiver.getsockname()
        assert not queues.overloaded(address)
        while queue_fill(receiver) <= 0.75:
            sender.sendto(b"x" * 900, address)
        assert queues.overloaded(address)
        assert not queues.overloaded(("127.0.0.1", 1))  # not a UDP listener here: never shed
        sock = queues._sockets[address]
        assert sock is not None
        sock.detach()
