"""The outbound-socket server: FreeSWITCH connects once per payment call.

One asyncio task per connection: handshake (connect, myevents, filters, linger), the
call handler (the per-call driver), then the orderly end (wait for
CHANNEL_HANGUP_COMPLETE, `exit`). A handler that fails leaves the channel to the
dialplan, whose fallback returns the call; a caller who hangs up is a normal end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from payivr.esl.channel import CallerGone
from payivr.esl.codec import ProtocolError
from payivr.esl.connection import SUBSCRIBED_EVENTS, EslConnection

log = logging.getLogger("payivr.esl")

CallHandler = Callable[[EslConnection], Awaitable[None]]


@dataclass
class ServerStats:
    """Counters for operators and the benchmark (no call data)."""

    accepted: int = 0
    active: int = 0
    peak_active: int = 0
    completed: int = 0
    caller_gone: int = 0
    failed: int = 0
    # Connections closed before FreeSWITCH's connect reply: port probes, not calls.
    probes: int = 0
    # The latest per-step overheads (seconds) of finished calls, for the benchmark.
    step_overheads: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=200_000))


class OutboundServer:
    """Accepts FreeSWITCH's outbound socket connections and runs a handler per call."""

    def __init__(
        self,
        handler: CallHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 8084,
        linger_s: int = 10,
        handshake_timeout_s: float = 5.0,
        events: tuple[str, ...] = SUBSCRIBED_EVENTS,
    ) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.linger_s = linger_s
        self.handshake_timeout_s = handshake_timeout_s
        self.events = events
        self.stats = ServerStats()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, backlog=1024, reuse_address=True
        )
        sockets = self._server.sockets or ()
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("esl listening on %s:%d", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        server = self._server
        if server is None:
            raise RuntimeError("esl server: start() left no listening socket")
        async with server:
            await server.serve_forever()

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop accepting; give calls in progress `grace_s` to end, then cut them."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task

    def _probe_closed(self) -> None:
        # Closed before FreeSWITCH's connect reply (which it sends at once): a port
        # probe (the deploy's readiness check, a load balancer), never a call. Quiet.
        self.stats.probes += 1
        log.debug("esl connection closed before the connect reply (a port probe)")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.stats.accepted += 1
        self.stats.active += 1
        self.stats.peak_active = max(self.stats.peak_active, self.stats.active)
        conn = EslConnection(reader, writer)
        started = time.monotonic()
        try:
            await conn.handshake(
                linger_s=self.linger_s, timeout=self.handshake_timeout_s, events=self.events
            )
            await self._handler(conn)
            self.stats.completed += 1
        except CallerGone:
            if not conn.uuid:
                self._probe_closed()
            else:
                self.stats.caller_gone += 1
                log.info("call %s: caller gone", conn.uuid)
        except (ProtocolError, TimeoutError, ConnectionError) as exc:
            if isinstance(exc, ConnectionError) and not conn.uuid:
                self._probe_closed()
            else:
                self.stats.failed += 1
                log.warning(
                    "call %s: event socket failed: %s", conn.uuid or "?", type(exc).__name__
                )
        except Exception:
            # The handler already recorded what it could; the traceback has no card
            # data (SecretDigits never print) and the log filter masks digit runs.
            self.stats.failed += 1
            log.exception(
                "call %s: handler error; dialplan fallback returns the call", conn.uuid or "?"
            )
        finally:
            with contextlib.suppress(Exception):
                await conn.finish()
            self.stats.active -= 1
            self.stats.step_overheads.extend(conn.step_overheads)
            if task is not None:
                self._tasks.discard(task)
            log.debug("call %s: socket done in %.1fs", conn.uuid or "?", time.monotonic() - started)
