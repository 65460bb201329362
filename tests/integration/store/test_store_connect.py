"""Connections from `services.redis`: password by reference, Sentinel, short timeouts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from payivr.core.config import load_config
from payivr.store.connect import redis_client
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


def test_sentinel_finds_the_master(tmp_path: Path) -> None:
    master = RedisServer().start()
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor payivr 127.0.0.1 {master.port} 1\n"
    )
    binary = shutil.which("redis-server") or "redis-server"
    sentinel = start([binary, str(conf), "--sentinel"], sentinel_port)
    try:
        config = config_with(
            tmp_path,
            {
                "url": "redis://ignored:6379/0",
                "sentinel": {"master": "payivr", "nodes": [f"127.0.0.1:{sentinel_port}"]},
            },
            {},
        )
        client = redis_client(config.services.redis)  # type: ignore[attr-defined]
        client.set("payivr:test:sentinel", "reached")
        direct = redis.Redis(port=master.port, decode_responses=True)
        assert direct.get("payivr:test:sentinel") == "reached"
    finally:
        stop(sentinel)
        master.cleanup()


def test_sentinel_with_requirepass_needs_the_sentinel_password(tmp_path: Path) -> None:
    """services.redis.sentinel.password reaches the Sentinels (sentinel_kwargs)."""
    master = RedisServer().start()
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        'requirepass "sentinel-only-pw"\n'
        f"sentinel monitor payivr 127.0.0.1 {master.port} 1\n"
    )
    binary = shutil.which("redis-server") or "redis-server"
    sentinel = start([binary, str(conf), "--sentinel"], sentinel_port)
    redis_section = {
        "url": "redis://ignored:6379/0",
        "sentinel": {"master": "payivr", "nodes": [f"127.0.0.1:{sentinel_port}"]},
    }
    try:
        without = config_with(tmp_path, redis_section, {})
        with pytest.raises(redis.RedisError):
            redis_client(without.services.redis).ping()  # type: ignore[attr-defined]
        redis_section["sentinel"]["password"] = "env:PAYIVR_SENTINEL_PW"  # type: ignore[index]
        config = config_with(tmp_path, redis_section, {"PAYIVR_SENTINEL_PW": "sentinel-only-pw"})
        client = redis_client(config.services.redis)  # type: ignore[attr-defined]
        client.set("payivr:test:sentinel-auth", "reached")
        direct = redis.Redis(port=master.port, decode_responses=True)
        assert direct.get("payivr:test:sentinel-auth") == "reached"
    finally:
        stop(sentinel)
        master.cleanup()


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
