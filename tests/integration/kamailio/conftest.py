"""Fixtures: real Kamailio (payivr kamailio runner), real Redis, SIPp on loopback ports."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from payivr.core.config import load_config
from payivr.kamailio.runner import KamailioProcess, running_kamailio
from payivr.kamailio.settings import Socket
from payivr.store.connect import redis_from_url
from tests.integration.kamailio.kamsupport import Call, SippResult, SippUas, run_uac, write_config
from tests.support.servers import RedisServer, free_port


def require_kamailio_and_sipp() -> None:
    """Skip (naming the packages to install) where Kamailio or SIPp is missing."""
    if shutil.which("kamailio", path="/usr/sbin:/usr/bin") is None or shutil.which("sipp") is None:
        pytest.skip(
            "kamailio and sipp are needed (apt-get install kamailio "
            "kamailio-python3-modules sip-tester)"
        )


class Blackhole:
    """A UDP socket that takes SIP requests and never answers: a dead FreeSWITCH node."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            with contextlib.suppress(TimeoutError, OSError):
                data, _ = self.sock.recvfrom(65535)
                self.received.append(data.decode(errors="replace").split(" ", 1)[0])

    def methods(self) -> list[str]:
        return list(self.received)

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()


@dataclass
class Stack:
    """Kamailio in front of SIPp UAS "FreeSWITCH" node(s), on one Redis."""

    kamailio: KamailioProcess
    port: int
    redis: redis.Redis
    workdir: Path
    uas: SippUas | None = None
    nodes: list[str] = field(default_factory=list)

    def uac(self, scenario: str, calls: list[Call], prefix: str, **kw: object) -> SippResult:
        return run_uac(
            scenario, self.port, calls, self.workdir, prefix=prefix, local_port=free_port(), **kw
        )  # type: ignore[arg-type]

    def session_keys(self) -> list[str]:
        return sorted(self.redis.scan_iter("payivr:session:*"))

    def events(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.redis.xrange("payivr:events")]


@contextlib.contextmanager
def stack_running(
    workdir: Path,
    redis_url: str,
    *,
    uas_scenario: str | None = "uas-freeswitch-answers",
    uas_extra: tuple[str, ...] = (),
    node_ports: list[int] | None = None,
    per_source: int = 10000,
    per_merchant: int = 10000,
    **knobs: object,
) -> Iterator[Stack]:
    """Start a UAS (unless None), Kamailio with the UAS port plus `node_ports` as nodes."""
    require_kamailio_and_sipp()
    uas = None
    ports = list(node_ports or [])
    if uas_scenario is not None:
        uas = SippUas(uas_scenario, free_port(), workdir, extra=uas_extra).start()
        ports.append(uas.port)
    nodes = [f"sip:127.0.0.1:{p}" for p in ports]
    config = load_config(
        write_config(
            workdir,
            redis_url=redis_url,
            nodes=nodes,
            per_source=per_source,
            per_merchant=per_merchant,
        )
    )
    port = free_port()
    knobs.setdefault("children", 2)
    knobs.setdefault("ds_ping_interval_s", 60)
    client = redis_from_url(redis_url)
    try:
        with running_kamailio(
            config,
            listen=(Socket("udp", "127.0.0.1", port), Socket("tcp", "127.0.0.1", port)),
            runtime_dir=workdir / "kamailio",
            **knobs,
        ) as kam:
            yield Stack(kam, port, client, workdir, uas, nodes)
    finally:
        if uas is not None:
            uas.stop()
        client.close()


@pytest.fixture(scope="module")
def shared_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One Kamailio + UAS for the admission tests of a module (starting one takes ~1 s)."""
    with stack_running(tmp_path_factory.mktemp("kamailio"), redis_server.url) as stack:
        yield stack


@pytest.fixture()
def stack(shared_stack: Stack) -> Stack:
    """The shared stack on an empty Redis."""
    shared_stack.redis.flushall()
    return shared_stack


@pytest.fixture()
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()
