"""The one way payivr builds Redis clients, from `services.redis`.

`services.redis` is a URL (its path or `?db=` names the database) or Sentinel
{master, nodes, password} plus that URL for the database number, a password for the
data nodes, and `socket_timeout_s` / `connect_timeout_s`. `redis_client` gives a
blocking client (Kamailio, the callback worker, CLI commands, the stack);
`async_redis_client` a redis.asyncio one (the ESL application, the agent service).
Both read the same settings the same way, so a Sentinel deployment, a password or a
database number reaches every service.

The sync path works with the venv's redis-py and with Debian's python3-redis 4.3
(Kamailio's embedded interpreter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the core stays importable without redis installed
    import redis
    import redis.asyncio

    from payivr.core.config import RedisConfig

HEALTH_CHECK_INTERVAL_S = 30


@dataclass(frozen=True)
class _Options:
    """What both client kinds are built from."""

    connection: dict[str, Any]  # for the data node (password, db, timeouts, decoding)
    sentinel_nodes: list[tuple[str, int]]
    sentinel_master: str
    sentinel_kwargs: dict[str, Any]  # for the Sentinels themselves


def _options(
    settings: RedisConfig,
    socket_timeout: float | None,
    connect_timeout: float | None,
    decode_responses: bool,
) -> _Options:
    connect_s = settings.connect_timeout_s if connect_timeout is None else connect_timeout
    connection: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s if socket_timeout is None else socket_timeout,
        "socket_connect_timeout": connect_s,
        "decode_responses": decode_responses,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
    if settings.password is not None:
        connection["password"] = settings.password.value()
    sentinel = settings.sentinel
    if sentinel is None:
        return _Options(connection, [], "", {})
    # With Sentinel the URL is not dialled: only its database number is used.
    connection["db"] = settings.db
    # A Sentinel answers a lookup at once; the connect timeout bounds it.
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": connect_s,
        "socket_connect_timeout": connect_s,
    }
    if sentinel.password is not None:
        # The Sentinels' own requirepass; the data nodes' password is in `connection`.
        sentinel_kwargs["password"] = sentinel.password.value()
    return _Options(connection, list(sentinel.nodes), sentinel.master, sentinel_kwargs)


def redis_client(
    settings: RedisConfig,
    *,
    socket_timeout: float | None = None,
    connect_timeout: float | None = None,
    decode_responses: bool = True,
) -> redis.Redis:
    """A blocking client for the configured Redis (or the Sentinel-monitored master).

    The timeouts default to `services.redis`; a caller that blocks (XREADGROUP BLOCK)
    passes a `socket_timeout` longer than its block time.
    """
    import redis as redis_lib

    opts = _options(settings, socket_timeout, connect_timeout, decode_responses)
    if settings.sentinel is None:
        return redis_lib.Redis.from_url(settings.url, **opts.connection)
    from redis.sentinel import Sentinel

    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        opts.sentinel_nodes, sentinel_kwargs=opts.sentinel_kwargs
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        opts.sentinel_master, **opts.connection
    )
    return client


def async_redis_client(
    settings: RedisConfig,
    *,
    socket_timeout: float | None = None,
    connect_timeout: float | None = None,
    decode_responses: bool = True,
    max_connections: int = 64,
) -> redis.asyncio.Redis:
    """The redis.asyncio counterpart of `redis_client`, with the same settings.

    Its pool blocks: a command that finds all `max_connections` busy waits for one to
    come back (up to the socket timeout) instead of raising MaxConnectionsError. With
    a raising pool, 1,000 calls reaching the same step at once failed some of their
    writes, retried them 0.2-0.6 s later and failed calls outright (docs/esl.md).
    """
    import redis.asyncio as aioredis

    opts = _options(settings, socket_timeout, connect_timeout, decode_responses)
    wait_s = opts.connection["socket_timeout"]
    if settings.sentinel is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.url, max_connections=max_connections, timeout=wait_s, **opts.connection
        )
        return aioredis.Redis.from_pool(pool)
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        opts.sentinel_nodes, sentinel_kwargs=opts.sentinel_kwargs
    )
    client: redis.asyncio.Redis = sentinel.master_for(
        opts.sentinel_master,
        connection_pool_class=_blocking_sentinel_pool(),
        max_connections=max_connections,
        timeout=wait_s,
        **opts.connection,
    )
    return client


def _blocking_sentinel_pool() -> type[Any]:
    """The Sentinel-managed pool (it finds the master) that blocks as above when full."""
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.sentinel import SentinelConnectionPool

    class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
        pass

    return BlockingSentinelConnectionPool


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client for a plain URL with the default timeouts (tests, tools)."""
    from payivr.core.config import RedisConfig

    return redis_client(RedisConfig(url=url), **kwargs)
