"""Build and run the ESL application from a Config (the `payivr esl serve` process)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from payivr.core.config import Config, EslConfig
from payivr.esl.driver import EslApplication
from payivr.esl.flow_call import FlowPorts
from payivr.esl.server import OutboundServer
from payivr.esl.telephone import Listening
from payivr.execution.metrics import PaymentMetrics
from payivr.metrics import CallStatsCollector
from payivr.metrics import serve as serve_metrics
from payivr.speech.pool import DecodingPool
from payivr.store.async_store import AsyncRedisSessionStore, AsyncSessionStore
from payivr.store.connect import async_redis_client

if TYPE_CHECKING:
    from payivr.wiring import Services

log = logging.getLogger("payivr.esl")


@dataclass
class EslService:
    app: EslApplication
    server: OutboundServer
    registry: CollectorRegistry  # its metrics (docs/monitoring.md), served by `serve`

    def shutdown_pools(self) -> None:
        self.app.processor_pool.shutdown(wait=False, cancel_futures=True)
        if self.app.listening is not None:
            self.app.listening.recogniser.close()

    async def close(self) -> None:
        self.shutdown_pools()
        close = getattr(self.app.store, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


def build_listening(options: EslConfig) -> Listening | None:
    """The decoding workers for spoken card data, or None (keypad only) when no
    recogniser is configured or installed here: a request for speech then gets the
    keypad entry (docs/dictation.md)."""
    speech = options.speech
    if not speech.pocketsphinx and not speech.vosk_models:
        return None
    if speech.pocketsphinx and importlib.util.find_spec("pocketsphinx") is None:
        log.warning("speech input unavailable (pocketsphinx): keypad entry only")
        return None
    if speech.vosk_models and importlib.util.find_spec("vosk") is None:
        log.warning("speech input unavailable (vosk): keypad entry only")
        return None
    return Listening(DecodingPool(speech))


def build_service(
    config: Config,
    services: Services,
    *,
    store: AsyncSessionStore | None = None,
    options: EslConfig | None = None,
    port: int | None = None,
) -> EslService:
    """The application and its server.

    `services` (payivr.wiring) gives the processors; the session store is the asyncio
    one (payivr.store.async_store) on the configured Redis unless `store` is given.
    """
    options = options or config.services.esl
    if store is None:
        client = async_redis_client(config.services.redis)
        store = AsyncRedisSessionStore(client, ttl_s=config.services.session_ttl_s)
    processor_pool = ThreadPoolExecutor(
        options.processor_threads, thread_name_prefix="payivr-processor"
    )
    registry = CollectorRegistry()
    # One set of payment series for the process: transferred and flow payments alike.
    payment_metrics = PaymentMetrics(registry, merchants=config.merchants.keys())
    app = EslApplication(
        store=store,
        merchants=dict(config.merchants),
        processor_for=services.processor_for,
        options=options,
        processor_pool=processor_pool,
        flows=flow_ports(
            config, services, store, options, processor_pool, registry, payment_metrics
        ),
        listening=build_listening(options),
        metrics=payment_metrics,
    )
    server = OutboundServer(
        app.handle,
        host=options.listen_host,
        port=options.listen_port if port is None else port,
        linger_s=options.linger_s,
    )
    registry.register(CallStatsCollector("payivr_esl", lambda: server.stats))
    return EslService(app, server, registry)


def flow_ports(
    config: Config,
    services: Services,
    store: AsyncSessionStore,
    options: EslConfig,
    processor_pool: ThreadPoolExecutor,
    registry: CollectorRegistry,
    payment_metrics: PaymentMetrics,
) -> FlowPorts | None:
    """The ports of flow calls, when the config has entry points (else None)."""
    if not config.flows.entry_points:
        return None
    from payivr.connectors import ConnectorClient
    from payivr.connectors.comments import CommentOutbox
    from payivr.flows.metrics import FlowMetrics, MeasuredFlowEvents
    from payivr.flows.payment import CapturePayments
    from payivr.flows.ports import ConnectorPort, OutboxComments, RedisFlowEvents
    from payivr.flows.speech import TtsCache

    client = getattr(store, "client", None)
    if client is None:
        raise TypeError("flow calls need the Redis session store (AsyncRedisSessionStore)")
    # Connector requests and outbox writes wait on the network: their own threads, so
    # a slow CRM never holds a processor call's thread.
    io_pool = ThreadPoolExecutor(32, thread_name_prefix="payivr-flow-io")
    flows = config.flows
    events = MeasuredFlowEvents(
        RedisFlowEvents(client),
        FlowMetrics(registry, [f.name for f in flows.flows.values()], flows.queues.keys()),
    )
    return FlowPorts(
        flows=config.flows,
        connectors=ConnectorPort(ConnectorClient(config.connectors), io_pool),
        comments=OutboxComments(CommentOutbox(services.redis), io_pool),
        events=events,
        payments=CapturePayments(
            store=store,
            sessions=events,
            merchants=dict(config.merchants),
            processor_for=services.processor_for,
            session_ttl_s=config.services.session_ttl_s,
            pool=processor_pool,
            metrics=payment_metrics,
        ),
        tts=TtsCache(options.prompts_dir / "tts", io_pool),
        merchants=dict(config.merchants),
    )


async def serve(
    service: EslService, *, grace_s: float = 30.0, metrics: tuple[str, int] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then let calls in progress finish (up to grace_s);
    `metrics` (host, port): where Prometheus scrapes this process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.app.warm_up()
    await service.server.start()
    exporter = None if metrics is None else serve_metrics(service.registry, *metrics)
    await stop.wait()
    log.info("esl stopping: %d calls in progress", service.server.stats.active)
    await service.server.stop(grace_s=grace_s)
    await service.close()
    if exporter is not None:
        exporter.shutdown()
