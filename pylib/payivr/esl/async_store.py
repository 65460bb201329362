"""Moved to payivr.store.async_store; kept for the imports that still name this path."""

from __future__ import annotations

from payivr.store.async_store import (
    SOCKET_TIMEOUT_S,
    AsyncRedisSessionStore,
    AsyncSessionStore,
    async_redis_client,
)

__all__ = ["SOCKET_TIMEOUT_S", "AsyncRedisSessionStore", "AsyncSessionStore", "async_redis_client"]
