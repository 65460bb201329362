"""Connections from `services.redis`: password by reference, Sentinel, short timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

from payivr.core.config import RedisConfig, load_config
from payivr.store.connect import async_redis_client, redis_client
from tests.support.servers import RedisServer, free_port, stop_process, wait_for_tcp

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def config_with(tmp: Path, redis_section: dict[str, object], env: dict[str, str]) -> object:
    data = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    data["secrets_file"] = str(REPO / "config" / "secrets.example.yaml")
    data["services"]["redis"] = redis_section
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ=env)


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_tcp(port)
    return proc


stop = stop_process


@pytest.fixture()
def redis_with_password() -> Iterator[int]:
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    proc = start(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--requirepass",
            "s3cret-redis-pw",
        ],
        port,
    )
    yield port
    stop(proc)


def test_password_comes_from_a_secret_reference(tmp_path: Path, redis_with_password: int) -> None:
    url = f"redis://127.0.0.1:{redis_with_password}/0"
    config = config_with(
        tmp_path,
        {"url": url, "password": "env:PAYIVR_REDIS_PW"},
        {"PAYIVR_REDIS_PW": "s3cret-redis-pw"},
    )
    client = redis_client(config.services.redis)  # type: ignore[attr-defined]
    assert client.ping()
    unauthenticated = redis_client(config_with(tmp_path, {"url": url}, {}).services.redis)  # type: ignore[attr-defined]
    with pytest.raises(redis.AuthenticationError):
        unauthenticated.ping()


@dataclass
class SentinelSet:
    master: RedisServer
    sentinel_port: int

    def section(self, db: int, **extra: object) -> dict[str, object]:
        """`services.redis` for this set; the URL's host is never dialled, its db is used."""
        return {
            "url": f"redis://ignored:6379/{db}",
            "sentinel": {"master": "payivr", "nodes": [f"127.0.0.1:{self.sentinel_port}"]},
            **extra,
        }

    def direct(self, db: int) -> redis.Redis:
        return redis.Redis(port=self.master.port, db=db, decode_responses=True)


@contextlib.contextmanager
def running_sentinel(tmp_path: Path, extra_conf: str = "") -> Iterator[SentinelSet]:
    """A master and one Sentinel monitoring it (`extra_conf`: more sentinel.conf lines)."""
    master = RedisServer().start()
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n{extra_conf}"
        f"sentinel monitor payivr 127.0.0.1 {master.port} 1\n"
    )
    binary = shutil.which("redis-server") or "redis-server"
    sentinel = start([binary, str(conf), "--sentinel"], sentinel_port)
    try:
        yield SentinelSet(master, sentinel_port)
    finally:
        stop(sentinel)
        master.cleanup()


@pytest.fixture()
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    with running_sentinel(tmp_path) as sentinels:
        yield sentinels


def test_sentinel_finds_the_master(tmp_path: Path, sentinel_set: SentinelSet) -> None:
    config = config_with(tmp_path, sentinel_set.section(db=0), {})
    client = redis_client(config.services.redis)  # type: ignore[attr-defined]
    client.set("payivr:test:sentinel", "reached")
    assert sentinel_set.direct(0).get("payivr:test:sentinel") == "reached"


def test_sentinel_with_requirepass_needs_the_sentinel_password(tmp_path: Path) -> None:
    """services.redis.sentinel.password reaches the Sentinels (sentinel_kwargs)."""
    with running_sentinel(tmp_path, 'requirepass "sentinel-only-pw"\n') as sentinels:
        redis_section = sentinels.section(db=0)
        without = config_with(tmp_path, redis_section, {})
        with pytest.raises(redis.RedisError):
            redis_client(without.services.redis).ping()  # type: ignore[attr-defined]
        redis_section["sentinel"]["password"] = "env:PAYIVR_SENTINEL_PW"  # type: ignore[index]
        config = config_with(tmp_path, redis_section, {"PAYIVR_SENTINEL_PW": "sentinel-only-pw"})
        client = redis_client(config.services.redis)  # type: ignore[attr-defined]
        client.set("payivr:test:sentinel-auth", "reached")
        assert sentinels.direct(0).get("payivr:test:sentinel-auth") == "reached"


def test_a_redis_that_does_not_answer_fails_fast(tmp_path: Path) -> None:
    """A peer that accepts and never replies: the command times out in seconds."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        config = config_with(tmp_path, {"url": f"redis://127.0.0.1:{port}/0"}, {})
        client = redis_client(config.services.redis)  # type: ignore[attr-defined]
        started = time.monotonic()
        with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
            client.ping()
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def redis_config(tmp: Path, section: dict[str, object]) -> RedisConfig:
    config = config_with(tmp, section, {})
    return config.services.redis  # type: ignore[attr-defined,no-any-return]


def test_sync_and_async_sentinel_clients_use_the_database_number(
    tmp_path: Path, sentinel_set: SentinelSet
) -> None:
    settings = redis_config(tmp_path, sentinel_set.section(db=3))
    redis_client(settings).set("payivr:test:sync", "db3")

    async def write_async() -> None:
        client = async_redis_client(settings)
        await client.set("payivr:test:async", "db3")
        await client.aclose()

    asyncio.run(write_async())
    assert sentinel_set.direct(3).mget("payivr:test:sync", "payivr:test:async") == ["db3", "db3"]
    assert sentinel_set.direct(0).dbsize() == 0


def paused_ping_s(master: RedisServer, ping: Callable[[], object], pause_ms: int) -> float:
    """Seconds `ping` takes to fail while the master holds every command for pause_ms;
    -1 if it succeeded (its timeout outlasted the pause)."""
    redis.Redis(port=master.port).client_pause(pause_ms)
    started = time.monotonic()
    try:
        ping()
    except (redis.TimeoutError, redis.ConnectionError):
        return time.monotonic() - started
    finally:
        time.sleep(max(0.0, pause_ms / 1000 - (time.monotonic() - started)) + 0.1)
    return -1.0


@pytest.mark.parametrize("timeout_s", [0.3, 3.0])
def test_sentinel_clients_honour_the_configured_socket_timeout(
    tmp_path: Path, sentinel_set: SentinelSet, timeout_s: float
) -> None:
    settings = redis_config(tmp_path, sentinel_set.section(db=2, socket_timeout_s=timeout_s))
    sync = redis_client(settings)
    sync.ping()
    failed_after = paused_ping_s(sentinel_set.master, sync.ping, pause_ms=1200)

    async def async_failed_after() -> float:
        client = async_redis_client(settings)
        await client.ping()
        loop = asyncio.get_running_loop()
        pinged: list[float] = []

        def ping() -> None:
            asyncio.run_coroutine_threadsafe(client.ping(), loop).result()

        pinged.append(await asyncio.to_thread(paused_ping_s, sentinel_set.master, ping, 1200))
        await client.aclose()
        return pinged[0]

    async_after = asyncio.run(async_failed_after())
    if timeout_s < 1:
        assert 0.2 < failed_after < 1.0 and 0.2 < async_after < 1.0, (failed_after, async_after)
    else:  # a timeout longer than the pause: the command waits and succeeds
        assert failed_after == -1.0 and async_after == -1.0


def test_the_agent_service_uses_sentinel_database_and_timeouts(
    tmp_path: Path, sentinel_set: SentinelSet
) -> None:
    from payivr.agent.bus import CallInfo, call_key
    from payivr.agent.service import build_service
    from payivr.agent.settings import load_agent_settings

    config = config_with(tmp_path, sentinel_set.section(db=5, socket_timeout_s=0.3), {})
    settings, tokens = load_agent_settings(config, {})  # type: ignore[arg-type]

    async def exercise() -> float:
        service = build_service(config, settings, tokens, sse_block_ms=200, command_block_ms=100)  # type: ignore[arg-type]
        bus = service.api.ctx.bus
        try:
            await bus.register_call(CallInfo(call="call-1", merchant="acme"))
            loop = asyncio.get_running_loop()

            def ping() -> None:
                asyncio.run_coroutine_threadsafe(bus.get_call("call-1"), loop).result()

            return await asyncio.to_thread(paused_ping_s, sentinel_set.master, ping, 2000)
        finally:
            await service.aredis.aclose()
            service.services.close()

    failed_after = asyncio.run(exercise())
    assert sentinel_set.direct(5).hget(call_key("call-1"), "merchant") == "acme"
    assert sentinel_set.direct(0).dbsize() == 0
    # socket_timeout_s beyond the bus's longest block (200 ms): 0.5 s, not the pause.
    assert 0.4 < failed_after < 1.5, failed_after


async def burst_of_commands(settings: RedisConfig, commands: int, connections: int) -> list[str]:
    """`commands` commands at once through a client of `connections` connections."""
    client = async_redis_client(settings, max_connections=connections)
    try:
        await client.set("payivr:test:burst", "reached")
        replies = await asyncio.gather(*(client.get("payivr:test:burst") for _ in range(commands)))
        return [str(reply) for reply in replies]
    finally:
        await client.aclose()


def test_a_burst_larger_than_the_pool_waits_for_connections(tmp_path: Path) -> None:
    """More commands at once than connections: each waits for one (before: the pool
    raised MaxConnectionsError, and 1,000 lockstep ESL calls failed with it)."""
    server = RedisServer().start()
    try:
        settings = redis_config(tmp_path, {"url": server.url})
        assert asyncio.run(burst_of_commands(settings, 200, 2)) == ["reached"] * 200
    finally:
        server.cleanup()


def test_a_burst_larger_than_the_sentinel_pool_waits_too(
    tmp_path: Path, sentinel_set: SentinelSet
) -> None:
    settings = redis_config(tmp_path, sentinel_set.section(db=1))
    assert asyncio.run(burst_of_commands(settings, 200, 2)) == ["reached"] * 200
