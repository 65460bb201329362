"""Free loopback ports under parallel test workers (payivr.stack.ports, tests/conftest.py).

Two pickers running at once (two xdist workers, or a worker and the payivr processes
it spawns) could be handed the same port by the kernel between one's pick and its
bind; each worker now picks only from a range of its own, above the kernel's
ephemeral ports.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

import pytest

from payivr.stack.ports import PORT_RANGE_ENV, free_port, free_udp_block, port_range
from tests.conftest import LAST_TEST_PORT, worker_port_range

EPHEMERAL_LAST = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[1])


def _free_now(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _spare_ports(count: int) -> str:
    """`count` ports all free now from the top of this worker's range, as a
    PAYIVR_PORT_RANGE value: no other worker picks from there."""
    ports = port_range()
    assert ports is not None, "tests/conftest.py sets the worker's range"
    for end in range(ports.stop, ports.start + count, -count):
        if all(_free_now(p) for p in range(end - count, end)):
            return f"{end - count}-{end - 1}"
    raise AssertionError(f"no {count} free ports in {ports}")


def test_each_worker_has_its_own_range_above_the_ephemeral_ports() -> None:
    for workers in (1, 2, 3, 4):
        slices = [worker_port_range(w, workers, EPHEMERAL_LAST) for w in range(workers)]
        assert slices[0][0] == EPHEMERAL_LAST + 1
        assert slices[-1][1] <= LAST_TEST_PORT
        for (_, last), (first, _) in itertools.pairwise(slices):
            assert last < first  # no port in two workers' ranges


def test_too_few_ports_for_the_workers_is_an_explicit_error() -> None:
    with pytest.raises(RuntimeError, match="too few"):
        worker_port_range(0, 8, LAST_TEST_PORT - 4000)


def test_the_suite_runs_with_this_workers_range() -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")) % workers
    first, last = worker_port_range(index, workers, EPHEMERAL_LAST)
    assert port_range() == range(first, last + 1)
    assert first <= free_port() <= last


def test_ports_are_handed_out_in_turn_never_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, _spare_ports(300))
    ports = port_range()
    assert ports is not None
    picked = [free_port() for _ in range(100)]
    assert len(set(picked)) == 100  # a port picked and not yet bound is not picked again
    assert all(p in ports for p in picked)


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, _spare_ports(2))
    ports = port_range()
    assert ports is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", ports[0]))  # UDP only: free_port needs both kinds free
        assert {free_port() for _ in range(4)} == {ports[1]}


def test_a_udp_block_is_even_free_and_inside_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, _spare_ports(400))
    ports = port_range()
    assert ports is not None
    base = free_udp_block(100)
    assert base % 2 == 0 and base in ports and base + 99 in ports
    for port in range(base, base + 100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
    assert free_udp_block(100) != base  # the next block is another one


@pytest.mark.parametrize("bad", ["20000", "20000-", "x-20010", "20010-20000", "80-2000"])
def test_a_malformed_range_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(PORT_RANGE_ENV, bad)
    with pytest.raises(ValueError, match=PORT_RANGE_ENV):
        port_range()
