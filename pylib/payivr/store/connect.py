"""Build a Redis client from `services.redis`: a URL, or Sentinel {master, nodes}.

Works with the venv's redis-py and with Debian's python3-redis 4.3 (Kamailio's
embedded interpreter). Timeouts are short on purpose: a Redis that does not answer
must turn into a quick 503 at Kamailio or a retry in a worker, not a stuck process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the core stays importable without redis installed
    import redis

    from payivr.core.config import RedisConfig

CONNECT_TIMEOUT_S = 1.0
SOCKET_TIMEOUT_S = 2.0


def _db_from_url(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def redis_client(
    settings: RedisConfig,
    *,
    socket_timeout: float = SOCKET_TIMEOUT_S,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    decode_responses: bool = True,
) -> redis.Redis:
    """A client for the configured Redis (or the Sentinel-monitored master).

    `socket_timeout` bounds every command; a caller that blocks (XREADGROUP BLOCK)
    passes a timeout longer than its block time.
    """
    import redis as redis_lib

    password = settings.password.value() if settings.password else None
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "decode_responses": decode_responses,
        "health_check_interval": 30,
    }
    if settings.sentinel is not None:
        from redis.sentinel import Sentinel

        # The Sentinels' own requirepass (services.redis.sentinel.password); the data
        # nodes' password goes to master_for below.
        sentinel_secret = settings.sentinel.password
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": connect_timeout,
            "socket_connect_timeout": connect_timeout,
        }
        if sentinel_secret:
            sentinel_kwargs["password"] = sentinel_secret.value()
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinel.nodes),
            sentinel_kwargs=sentinel_kwargs,
            socket_timeout=connect_timeout,
            socket_connect_timeout=connect_timeout,
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.sentinel.master,
            password=password,
            db=_db_from_url(settings.url),
            **common,
        )
        return client
    kwargs = dict(common)
    if password:
        kwargs["password"] = password
    return redis_lib.Redis.from_url(settings.url, **kwargs)


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """A client for a plain URL with the same short timeouts (tests, tools)."""
    from payivr.core.config import RedisConfig

    return redis_client(RedisConfig(url=url), **kwargs)
