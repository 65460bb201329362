"""The flow's ports on real services: connectors in threads, events and sessions on
Redis, the comment outbox.

- ``ConnectorPort``: payivr.connectors' synchronous client in a thread pool, so a slow
  CRM never blocks the event loop; the connector's own timeouts and retry bound
  (``services.connectors.<name>``) limit each request.
- ``RedisFlowEvents``: flow events on ``payivr:events`` (names and verdicts only).
- ``OutboxComments``: the connectors' durable comment outbox, in a thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol

from payivr.core.config_types import MerchantConfig
from payivr.core.orphan import WatchBudget
from payivr.core.result import iso
from payivr.core.session import Session
from payivr.flows.context import ConnectorFailed, HttpAnswer
from payivr.store import keys
from payivr.store.admit_write import ADMIT_SCRIPT, admit_write


class ConnectorClientLike(Protocol):
    """payivr.connectors.ConnectorClient's request (raises ConnectorError)."""

    def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        json_body: object | None = None,
    ) -> Any: ...


class ConnectorPort:
    """The flow's Connectors on a ConnectorClient, one worker thread per request."""

    def __init__(self, client: ConnectorClientLike, pool: Executor | None = None) -> None:
        self.client = client
        self.pool = pool

    async def request(
        self, name: str, method: str, path: str, query: Mapping[str, str], body: object
    ) -> HttpAnswer:
        from payivr.connectors import ConnectorError

        call = functools.partial(
            self.client.request, name, method, path, query=dict(query) or None, json_body=body
        )
        try:
            response = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except ConnectorError as exc:
            raise ConnectorFailed(exc.kind, exc.status) from None
        return HttpAnswer(response.status, response.json)


class RedisFlowEvents:
    """Flow events on payivr:events, and payment sessions created by ``pay``."""

    def __init__(
        self,
        client: Any,
        *,
        maxlen: int = keys.EVENTS_MAXLEN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        budget: WatchBudget | None = None,
    ) -> None:
        self.client = client  # redis.asyncio
        self.maxlen = maxlen
        self.budget = budget
        self.clock = clock

    async def publish(self, name: str, fields: Mapping[str, str]) -> None:
        entry = {"event": name, **fields, "at": iso(self.clock())}
        await self.client.xadd(keys.EVENTS, entry, maxlen=self.maxlen, approximate=True)

    async def create_session(self, session: Session, merchant: MerchantConfig, ttl_s: int) -> None:
        """A payment session, written as Kamailio writes one for a transferred payment
        (the same script): with its watchdog deadline on `payivr:inflight`, which the
        payment's writes push on, so the watchdog finalises it if this application dies."""
        write = admit_write(
            session,
            merchant,
            session.created_at.timestamp(),
            session_ttl_s=ttl_s,
            budget=self.budget,
            events_maxlen=self.maxlen,
        )
        await self.client.eval(ADMIT_SCRIPT, len(write.keys), *write.keys, *write.args)


class CommentOutboxLike(Protocol):
    """payivr.connectors' CommentOutbox.enqueue (synchronous, durable)."""

    def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str: ...


class OutboxComments:
    """The flow's Comments on the connectors' durable outbox."""

    def __init__(self, outbox: CommentOutboxLike, pool: Executor | None = None) -> None:
        self.outbox = outbox
        self.pool = pool

    async def enqueue(self, connector: str, ticket_id: str, body: str, *, call_id: str) -> str:
        call = functools.partial(self.outbox.enqueue, connector, ticket_id, body, call_id=call_id)
        entry: str = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        return entry
