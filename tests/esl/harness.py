"""Run the ESL application against the fake FreeSWITCH with a real Redis.

`EslHarness.call(...)` creates a session in Redis (as Kamailio would), starts the
application's server if needed, connects one FakeCall and returns it once the
application has finished the call, with everything needed to check what was written:
log records, Redis keys, the outbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from payivr.core.config import Config, RedisConfig, ReturnSettings, load_config
from payivr.core.session import Session
from payivr.esl.server import OutboundServer
from payivr.esl.service import EslService, build_service
from payivr.wiring import Services, build_services
from tests.esl.peer import CallScript, FakeCall, Input, run_call
from tests.support.builders import payment_request

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "payivr.example.yaml"
CALLBACK_URL = "http://127.0.0.1:9/payivr-callback"


def test_config(processor_timeout_s: float = 0.3) -> Config:
    """The example config with a short processor timeout (the timeout card's wait)."""
    config = load_config(EXAMPLE_CONFIG)
    merchants = {
        mid: dataclasses.replace(
            m, processor=dataclasses.replace(m.processor, timeout_s=processor_timeout_s)
        )
        for mid, m in config.merchants.items()
    }
    return dataclasses.replace(config, merchants=merchants)


class RecordingHandler(logging.Handler):
    """Keeps every formatted line (with tracebacks) the application logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


class EslHarness:
    def __init__(
        self,
        redis_url: str,
        *,
        returns: ReturnSettings | None = None,
        config: Config | None = None,
        prompts_dir: Path = Path("/var/lib/payivr/prompts"),
    ) -> None:
        import redis

        self.config = config or test_config()
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.services: Services = build_services(self.config, redis_client=self.client)
        self.options = dataclasses.replace(
            self.config.services.esl,
            listen_port=0,
            prompts_dir=prompts_dir,
            linger_s=5,
            recordings_dir=Path("/var/lib/payivr/recordings"),
            returns=returns or ReturnSettings(proxy="sip:127.0.0.1:5060"),
        )
        self.redis_url = redis_url
        self.service: EslService | None = None
        self.log = RecordingHandler()

    async def start(self) -> None:
        # The asyncio Redis client belongs to the event loop that runs the test.
        from payivr.store.async_store import AsyncRedisSessionStore
        from payivr.store.connect import async_redis_client

        store = AsyncRedisSessionStore(async_redis_client(RedisConfig(url=self.redis_url)))
        self.service = build_service(self.config, self.services, store=store, options=self.options)
        await self.service.app.warm_up()
        await self.service.server.start()

    async def stop(self) -> None:
        assert self.service is not None
        await self.service.server.stop(grace_s=2)
        await self.service.close()

    @property
    def server(self) -> OutboundServer:
        assert self.service is not None
        return self.service.server

    def new_session(self, **changes: object) -> Session:
        now = datetime.now(UTC)
        fields: dict[str, object] = {"call_id": "cc-call-1@127.0.0.1", "callback_url": CALLBACK_URL}
        session = Session.new(payment_request(**{**fields, **changes}), now)
        self.services.store.create(session, 3600)
        return session

    async def call(
        self,
        inputs: list[Input],
        *,
        session: Session | None = None,
        session_id: str | None = None,
        **script: object,
    ) -> FakeCall:
        """One call through the application, returned when the application is done."""
        if session_id is None:
            session = session or self.new_session()
            session_id = session.id
        headers = {"X-Pay-Merchant": "acme", "X-Pay-Order": "A1001",
                   "X-Payivr-Session": session_id}  # fmt: skip
        call_script = CallScript(sip_headers=headers, inputs=list(inputs), **script)  # type: ignore[arg-type]
        call = await run_call(call_script, self.server.port, timeout=20)
        await self.idle()
        return call

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until the application has finished every call."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.server.stats.active:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the application did not finish its calls")
            await asyncio.sleep(0.01)

    # -- what was written ----------------------------------------------------------

    def redis_dump(self) -> Iterator[str]:
        """Every key and value in Redis, as text (hashes, streams, strings)."""
        for key in self.client.scan_iter(count=1000):
            yield key
            kind = self.client.type(key)
            if kind == "hash":
                yield repr(self.client.hgetall(key))
            elif kind == "stream":
                yield repr(self.client.xrange(key))
            elif kind == "string":
                yield repr(self.client.get(key))
            elif kind == "list":
                yield repr(self.client.lrange(key, 0, -1))
            elif kind == "set":
                yield repr(self.client.smembers(key))
            elif kind == "zset":
                yield repr(self.client.zrange(key, 0, -1))

    def outbox(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.client.xrange("payivr:outbox")]

    def load(self, session_id: str) -> Session:
        session = self.services.store.load(session_id)
        assert session is not None
        return session
