"""`payivr agent serve`: the agent API (HTTP + SSE + panel) and the agent-mode socket.

Both run in one asyncio process so that a deployment has one more service, not two;
they share nothing but Redis, so either could be split out later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from payivr.agent.api import AgentApi, ApiContext
from payivr.agent.bus import AgentBus
from payivr.agent.driver import AgentDeps, call_handler
from payivr.agent.http import HttpServer
from payivr.agent.settings import AgentSettings, MerchantTokens, load_agent_settings
from payivr.core.config import Config, ConfigError
from payivr.esl.server import OutboundServer
from payivr.execution.metrics import PaymentMetrics
from payivr.media.masking import AgentMedia
from payivr.media.ng import NgClient
from payivr.media.settings import load_rtpengine_settings
from payivr.metrics import CallStatsCollector
from payivr.metrics import serve as serve_metrics

log = logging.getLogger("payivr.agent")


@dataclass
class AgentService:
    api: AgentApi
    http: HttpServer
    esl: OutboundServer
    aredis: Any
    services: Any
    registry: CollectorRegistry  # its metrics (docs/monitoring.md)

    async def start(self) -> None:
        await self.http.start()
        await self.esl.start()

    async def stop(self) -> None:
        self.api.stopping.set()
        await self.http.stop()
        await self.esl.stop(grace_s=5)
        await self.aredis.aclose()
        self.services.close()


def async_redis(config: Config, *, block_ms: int) -> Any:
    """A redis.asyncio client for the same Redis as the session store (URL or Sentinel,
    passwords, database number): the bus blocks on its streams for up to `block_ms`,
    so the socket timeout is `services.redis.socket_timeout_s` beyond that."""
    from payivr.store.connect import async_redis_client

    cfg = config.services.redis
    return async_redis_client(cfg, socket_timeout=cfg.socket_timeout_s + block_ms / 1000)


def build_service(
    config: Config,
    settings: AgentSettings,
    tokens: MerchantTokens,
    *,
    services: Any | None = None,
    aredis: Any | None = None,
    sse_block_ms: int = 15000,
    command_block_ms: int = 1000,
) -> AgentService:
    from payivr.wiring import build_services

    services = services if services is not None else build_services(config)
    if aredis is None:
        aredis = async_redis(config, block_ms=max(sse_block_ms, command_block_ms))
    bus = AgentBus(aredis, ttl_s=settings.call_ttl_s)
    registry = CollectorRegistry()
    api = AgentApi(
        ApiContext(
            config=config,
            tokens=tokens,
            bus=bus,
            store=services.store,
            session_ttl_s=config.services.session_ttl_s,
            sse_block_ms=sse_block_ms,
        )
    )
    esl_config = config.services.esl
    deps = AgentDeps(
        config=config,
        settings=settings,
        bus=bus,
        store=services.store,
        processor_for=services.processor_for,
        prompts_dir=esl_config.prompts_dir,
        sofia_profile=esl_config.returns.sofia_profile,
        media=agent_media(config),
        media_proxy=esl_config.returns.proxy,
        command_block_ms=command_block_ms,
        metrics=PaymentMetrics(registry, merchants=config.merchants.keys()),
    )
    http = HttpServer(api, settings.listen_host, settings.listen_port)
    esl = OutboundServer(
        call_handler(deps),
        host=settings.esl_listen_host,
        port=settings.esl_listen_port,
        linger_s=esl_config.linger_s,
    )
    registry.register(CallStatsCollector("payivr_agent", lambda: esl.stats))
    return AgentService(api=api, http=http, esl=esl, aredis=aredis, services=services,
                        registry=registry)  # fmt: skip


def agent_media(config: Config) -> AgentMedia | None:
    """rtpengine for the agent's leg, from `services.rtpengine` (None without it).

    The agent's leg reaches rtpengine only through Kamailio (`fs_path`): without
    `services.esl.return.proxy` it would bypass rtpengine, so that is refused.
    """
    media = load_rtpengine_settings(config)
    if media is None:
        return None
    if not config.services.esl.returns.proxy:
        raise ConfigError(
            [
                "services.esl.return.proxy: required with services.rtpengine (the agent's "
                "leg goes through Kamailio to reach rtpengine)"
            ]
        )
    return AgentMedia(NgClient(media.ng_host, media.ng_port), media)


async def serve(config: Config) -> None:
    settings, tokens = load_agent_settings(config, os.environ)
    if not len(tokens):
        log.warning("no merchant has agent_api.token: every API call will be refused")
    service = build_service(config, settings, tokens)
    await service.start()
    exporter = serve_metrics(service.registry, config.services.metrics_host, settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
    if exporter is not None:
        exporter.shutdown()
