"""Shared fixtures: real Redis on a loopback port, the example config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from payivr.stack.ports import PORT_RANGE_ENV
from tests.support.servers import RedisServer

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config" / "payivr.example.yaml"
# The test suite's own ports: above the kernel's ephemeral ports (which outgoing
# connections take: 32768-60999 by default), so apart from them, from FreeSWITCH's
# default RTP range (16384-32768: the real-engine tests) and from the fixed ports of
# the Ansible CI inventory (15060 ... 19467, ansible/inventories/ci*).
LAST_TEST_PORT = 65535


def worker_port_range(worker: int, workers: int, ephemeral_last: int) -> tuple[int, int]:
    """The ports of xdist worker `worker` of `workers`: a slice of its own, so that two
    workers never pick the same port between a pick and the bind (payivr.stack.ports)."""
    span = (LAST_TEST_PORT - ephemeral_last) // workers
    if span < 1000:
        raise RuntimeError(
            f"ports {ephemeral_last + 1}-{LAST_TEST_PORT} are too few for {workers} workers"
            " (net.ipv4.ip_local_port_range ends too high)"
        )
    first = ephemeral_last + 1 + worker * span
    return first, first + span - 1


def pytest_configure(config: pytest.Config) -> None:
    # Runs in each xdist worker (and in a plain run) before any test: the servers the
    # tests start, and the payivr processes they spawn, inherit the range.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    ephemeral_last = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[1])
    # A worker xdist starts to replace a crashed one is numbered on (gw2 of 2): it
    # takes the slice of the one it replaces.
    index = int(worker.removeprefix("gw")) % workers
    first, last = worker_port_range(index, workers, ephemeral_last)
    os.environ[PORT_RANGE_ENV] = f"{first}-{last}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A Redis URL with an empty database for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url
