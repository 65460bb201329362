"""payivr's Redis client follows a Sentinel failover (the Sentinel layout the redis
role deploys, here with one Sentinel and two Redis servers on loopback ports). The
Sentinel has its own requirepass, given to the client as services.redis.sentinel.password.

The client is built the way every payivr service builds it: `load_config` on a config
whose `services.redis.sentinel` names the Sentinels (as the payivr role writes it),
then `payivr.store.connect.redis_client`. The test writes through that client, forces
`SENTINEL FAILOVER`, and requires the same client object to write to the new primary.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, stop_process, wait_for_tcp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

MASTER = "payivr"
PASSWORD = "sentinel-test-password"
# The Sentinel's own requirepass (services.redis.sentinel.password in the config).
SENTINEL_PASSWORD = "sentinel-own-test-password"


class Proc:
    """One redis-server (or Sentinel) on a loopback port, config file in `workdir`."""

    def __init__(self, workdir: Path, name: str, lines: list[str]) -> None:
        self.port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.conf = self.dir / f"{name}.conf"
        self.conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    "daemonize no",
                    "loglevel warning",
                    f"logfile {self.dir}/log",
                    *lines,
                ]
            )
            + "\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Proc:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(self.conf), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_tcp(self.port)
        return self

    def stop(self) -> None:
        stop_process(self.proc)


def _data_node(workdir: Path, name: str, replica_of: int | None) -> Proc:
    lines = [
        f'requirepass "{PASSWORD}"',
        f'masterauth "{PASSWORD}"',
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        "replica-announce-ip 127.0.0.1",
        "repl-diskless-sync-delay 0",
    ]
    if replica_of is not None:
        lines.append(f"replicaof 127.0.0.1 {replica_of}")
    return Proc(workdir, name, lines)


@pytest.fixture()
def sentinel_set(tmp_path: Path) -> Iterator[tuple[Proc, Proc, Proc]]:
    procs: list[Proc] = []
    try:
        primary = _data_node(tmp_path, "redis-a", None).start()
        procs.append(primary)
        replica = _data_node(tmp_path, "redis-b", primary.port).start()
        procs.append(replica)
        sentinel = Proc(
            tmp_path,
            "sentinel",
            [
                "sentinel announce-ip 127.0.0.1",
                f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 1",
                f'sentinel auth-pass {MASTER} "{PASSWORD}"',
                f"sentinel down-after-milliseconds {MASTER} 1000",
                f"sentinel failover-timeout {MASTER} 5000",
                f'requirepass "{SENTINEL_PASSWORD}"',
            ],
        ).start("--sentinel")
        procs.append(sentinel)
        yield primary, replica, sentinel
    finally:
        for p in reversed(procs):
            p.stop()


def _config(
    tmp_path: Path, sentinel_port: int, master: str, password: str, sentinel_password: str | None
) -> Path:
    (tmp_path / "secrets.yaml").write_text(
        f"redis_password: {password}\nacme_signing: s1\nacme_callback: c1\n"
        f"sandbox_token: {'k' * 32}\n"
        f"sentinel_password: {sentinel_password or ''}\n"
    )
    sentinel_auth = ", password: file:sentinel_password" if sentinel_password else ""
    path = tmp_path / "payivr.yaml"
    path.write_text(
        f"secrets_file: {tmp_path / 'secrets.yaml'}\n"
        "services:\n"
        "  redis:\n"
        "    url: redis://127.0.0.1:6379/0\n"
        "    password: file:redis_password\n"
        f"    sentinel: {{master: {master}, nodes: ['127.0.0.1:{sentinel_port}']{sentinel_auth}}}\n"
        "merchants:\n"
        "  acme:\n"
        "    signing_secret: file:acme_signing\n"
        "    callback_secret: file:acme_callback\n"
        "    sources: [127.0.0.1/32]\n"
        "    processor: {type: sandbox, token_secret: file:sandbox_token}\n"
    )
    return path


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def assert_client_follows_failover(
    tmp_path: Path,
    sentinel_port: int,
    primary_port_: int,
    replica_port: int,
    master: str = MASTER,
    password: str = PASSWORD,
    sentinel_password: str | None = SENTINEL_PASSWORD,
) -> None:
    """Write through payivr's client, force a failover, write again: the second
    write must land on the promoted replica, next to the first."""
    import redis

    from payivr.core.config import load_config
    from payivr.store.connect import redis_client

    sent = redis.Redis(
        host="127.0.0.1", port=sentinel_port, password=sentinel_password, decode_responses=True
    )
    if sentinel_password:
        # The Sentinel really asks for its password: a client without it is refused.
        bare = redis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True)
        with pytest.raises(redis.AuthenticationError):
            bare.sentinel_masters()
        bare.close()

    def primary_port() -> int:
        _host, port = sent.sentinel_get_master_addr_by_name(master)
        return int(port)

    def role(port: int) -> dict[str, object]:
        c = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
        try:
            return dict(c.info("replication"))
        finally:
            c.close()

    def replica_known() -> bool:
        # Sentinel promotes only a replica it has fresh INFO from, with its link up.
        info = sent.sentinel_slaves(master)
        return any(
            int(r["port"]) == replica_port
            and "s_down" not in r["flags"]
            and r.get("master-link-status") == "ok"
            for r in info
        )

    _wait(lambda: role(replica_port).get("master_link_status") == "up", 20, "the replica to sync")
    _wait(replica_known, 20, "Sentinel to see the replica")
    config = load_config(_config(tmp_path, sentinel_port, master, password, sentinel_password))
    client = redis_client(config.services.redis)

    client.xadd("payivr:outbox", {"entry": "before"})
    assert primary_port() == primary_port_
    # WAIT: the entry is on the replica before the failover, as with a real outbox
    # entry written some time before a primary fails.
    assert client.execute_command("WAIT", 1, 5000) == 1

    deadline = time.monotonic() + 20
    while True:
        try:
            sent.execute_command("SENTINEL", "FAILOVER", master)
            break
        except redis.ResponseError as exc:  # NOGOODSLAVE until its view is fresh
            if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    _wait(lambda: primary_port() == replica_port, 30, "the replica to be promoted")
    # Until Sentinel has turned the old primary into a replica, a client holding a
    # connection to it could still write there (Redis's documented failover window).
    _wait(lambda: role(primary_port_).get("role") == "slave", 30, "the old primary to be demoted")

    # The same client object, no reconfiguration: writes must land on the new primary.
    deadline = time.monotonic() + 20
    while True:
        try:
            client.xadd("payivr:outbox", {"entry": "after"})
            break
        except (redis.ConnectionError, redis.ReadOnlyError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    new_primary = redis.Redis(
        host="127.0.0.1", port=replica_port, password=password, decode_responses=True
    )
    assert new_primary.info("replication")["role"] == "master"
    entries = [fields["entry"] for _, fields in new_primary.xrange("payivr:outbox")]
    assert entries == ["before", "after"]
    client.close()
    new_primary.close()
    sent.close()


@pytest.mark.timeout(90)
def test_payivr_redis_client_follows_a_sentinel_failover(
    sentinel_set: tuple[Proc, Proc, Proc], tmp_path: Path
) -> None:
    primary, replica, sentinel = sentinel_set
    assert_client_follows_failover(tmp_path, sentinel.port, primary.port, replica.port)
