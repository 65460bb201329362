"""The one place that builds payivr's long-lived objects from a validated Config.

Entry points (the ESL application, the callback worker, the agent API, the demo)
call `build_services` once at start-up; nothing in payivr keeps module-level mutable
state, so tests build as many independent stacks as they like.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from payivr.core.config import Config
from payivr.core.logfilter import install_log_filter

if TYPE_CHECKING:
    from payivr.core.processor import Processor
    from payivr.store.redis_store import RedisSessionStore


@dataclass
class Services:
    """What a payivr process needs, built from one Config."""

    config: Config
    redis: Any
    store: RedisSessionStore
    processors: dict[str, Processor] = field(default_factory=dict)

    def processor_for(self, merchant_id: str) -> Processor:
        return self.processors[merchant_id]

    def close(self) -> None:
        self.redis.close()


def build_services(config: Config, *, redis_client: Any | None = None) -> Services:
    """Redis client, session store and one processor per merchant."""
    from payivr.processors import build_processor
    from payivr.store.connect import redis_client as connect
    from payivr.store.redis_store import RedisSessionStore

    client = redis_client if redis_client is not None else connect(config.services.redis)
    store = RedisSessionStore(client, ttl_s=config.services.session_ttl_s)
    processors = {mid: build_processor(m) for mid, m in config.merchants.items()}
    return Services(config=config, redis=client, store=store, processors=processors)


def setup_logging(level: str = "INFO") -> None:
    """Log format for payivr's services, with the PAN-masking filter installed."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_filter()
