"""Build and run the ESL application from a Config (the `payivr esl serve` process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from payivr.core.config import Config
from payivr.esl.driver import EslApplication
from payivr.esl.options import EslOptions, esl_options
from payivr.esl.server import OutboundServer

log = logging.getLogger("payivr.esl")

# Redis calls are short; a small pool keeps them off the event loop.
IO_THREADS = 32


@dataclass
class EslService:
    app: EslApplication
    server: OutboundServer

    def shutdown_pools(self) -> None:
        self.app.io_pool.shutdown(wait=False, cancel_futures=True)
        self.app.processor_pool.shutdown(wait=False, cancel_futures=True)


def build_service(
    config: Config, services: object, *, options: EslOptions | None = None, port: int | None = None
) -> EslService:
    """The application and its server. `services` is a payivr.wiring.Services."""
    options = options or esl_options(config)
    app = EslApplication(
        store=services.store,  # type: ignore[attr-defined]
        merchants=dict(config.merchants),
        processor_for=services.processor_for,  # type: ignore[attr-defined]
        options=options,
        io_pool=ThreadPoolExecutor(IO_THREADS, thread_name_prefix="payivr-io"),
        processor_pool=ThreadPoolExecutor(
            options.processor_threads, thread_name_prefix="payivr-processor"
        ),
    )
    server = OutboundServer(
        app.handle,
        host=options.listen_host,
        port=options.listen_port if port is None else port,
        linger_s=options.linger_s,
    )
    return EslService(app, server)


async def serve(service: EslService, *, grace_s: float = 30.0) -> None:
    """Serve until SIGTERM/SIGINT, then let calls in progress finish (up to grace_s)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.app.warm_up()
    await service.server.start()
    await stop.wait()
    log.info("esl stopping: %d calls in progress", service.server.stats.active)
    await service.server.stop(grace_s=grace_s)
    service.shutdown_pools()
