"""An agent-mode stack for tests: the real agent service (HTTP API, SSE, ESL socket)
on loopback ports, real Redis, and transcript-peer calls, on an asyncio loop in a
background thread so that tests (and Selenium) can use plain blocking HTTP."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import secrets
import threading
import time
import wave
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import redis
import requests
import yaml

from payivr.agent.service import AgentService, build_service
from payivr.agent.settings import AgentSettings, load_agent_settings
from payivr.core.config import Config, parse_config
from payivr.core.prompts import PromptId
from tests.agent.peer import AgentFakeCall, AgentInput
from tests.esl.peer import CallScript
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
ACME_TOKEN = "acme-agent-token-0123456789abcdef"
GLOBEX_TOKEN = "globex-agent-token-0123456789abcdef"
# Every card number the tests key: none may appear anywhere payivr writes.
TEST_PANS = ("4111111111111111", "4000000000000002", "4000000000009995")


PROMPT_MS = 40  # each test prompt: that much silence (the telephone waits its length)


def write_silent_prompts(prompts_dir: Path, language: str = "en") -> None:
    """A short silent WAV per prompt of the catalogue, so prompts are really played."""
    folder = prompts_dir / language
    folder.mkdir(parents=True, exist_ok=True)
    for prompt in PromptId:
        with wave.open(str(folder / f"{prompt.value}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\0\0" * (8 * PROMPT_MS))


def make_config(tmp: Path, redis_url: str) -> Config:
    data = yaml.safe_load(EXAMPLE.read_text())
    secrets = yaml.safe_load((EXAMPLE.parent / "secrets.example.yaml").read_text())
    secrets.update({"acme_agent": ACME_TOKEN, "globex_agent": GLOBEX_TOKEN})
    (tmp / "secrets.yaml").write_text(yaml.safe_dump(secrets))
    data["secrets_file"] = "secrets.yaml"
    data["services"]["redis"]["url"] = redis_url
    data["services"]["esl"]["prompts_dir"] = str(tmp / "prompts")
    write_silent_prompts(tmp / "prompts")
    data["services"]["esl"]["linger_s"] = 1
    acme = data["merchants"]["acme"]
    acme["agent_api"] = {"token": "file:acme_agent"}
    globex = copy.deepcopy(acme)
    globex["name"] = "Globex"
    globex["agent_api"] = {"token": "file:globex_agent"}
    data["merchants"]["globex"] = globex
    data["services"]["agent_api"] = {"listen_port": 8090, "esl_listen_port": 8085}
    return parse_config(data, base_dir=tmp, path=tmp / "payivr.yaml")


class AgentStack:
    """Start with `start()`, stop with `close()`; everything on 127.0.0.1."""

    def __init__(self, tmp: Path, redis_url: str, **settings: Any) -> None:
        self.config = make_config(tmp, redis_url)
        base, self.tokens = load_agent_settings(self.config, {})
        self.settings: AgentSettings = dataclasses.replace(
            base, listen_port=free_port(), esl_listen_port=free_port(), **settings
        )
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: AgentService | None = None
        self.http = requests.Session()
        self.readers: list[SseReader] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.listen_port}"

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self) -> AgentStack:
        self.thread.start()

        async def up() -> AgentService:
            # Redis clients from services.redis, as `payivr agent serve` builds them.
            service = build_service(
                self.config,
                self.settings,
                self.tokens,
                sse_block_ms=200,
                command_block_ms=100,
            )
            await service.start()
            return service

        self.service = self.submit(up()).result(10)
        return self

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        if self.service is not None:
            self.submit(self.service.stop()).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.http.close()
        self.redis.close()

    # -- calls ---------------------------------------------------------------------------

    def call(
        self,
        inputs: list[AgentInput],
        *,
        agent: str = "sip:1001@127.0.0.1",
        ref: str = "REF-1001",
        merchant: str = "acme",
        key_delay_s: float = 0.01,
        session_merchant: str | None = "acme",
        **script_options: Any,
    ) -> tuple[AgentFakeCall, Future[None]]:
        headers = {"X-Pay-Merchant": merchant, "X-Pay-Agent": agent, "X-Pay-Call-Ref": ref}
        if session_merchant is not None:
            # What Kamailio stores when it admits a secure-trunk call (docs/agent-assisted.md).
            session_id = secrets.token_urlsafe(16)
            self.redis.hset(
                f"payivr:session:{session_id}",
                mapping={"id": session_id, "merchant": session_merchant, "mode": "agent"},
            )
            headers["X-Payivr-Session"] = session_id
        script = CallScript(
            sip_headers=headers,
            inputs=list(inputs),  # type: ignore[arg-type]
            sensitive_dtmf=False,  # secure trunk: DTMF reaches the agent outside payments
            **script_options,
        )
        fake = AgentFakeCall(script, key_delay_s=key_delay_s)
        done = self.submit(fake.run("127.0.0.1", self.settings.esl_listen_port, timeout=60))
        return fake, done

    def on_loop(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the loop's thread (the peer is not thread-safe)."""

        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                return await result
            return result

        return self.submit(run()).result(10)

    # -- HTTP ----------------------------------------------------------------------------

    def api(
        self, method: str, path: str, *, token: str | None = ACME_TOKEN, body: Any = None
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.base + path, headers=headers, json=body, timeout=10)

    def find_call(self, *, agent: str = "1001", timeout: float = 5.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while True:
            r = self.api("GET", f"/v1/calls?agent={agent}")
            if r.status_code == 200 and r.json()["state"] in ("connected", "capturing"):
                data: dict[str, Any] = r.json()
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"call not found: {r.status_code} {r.text}")
            time.sleep(0.02)

    def redis_dump(self) -> str:
        """Every key and value in Redis as text, for the card-data scan."""
        out = []
        for key in self.redis.scan_iter("*"):
            kind = _text(self.redis.type(key))
            if kind == "string":
                value: Any = self.redis.get(key)
            elif kind == "hash":
                value = self.redis.hgetall(key)
            elif kind == "stream":
                value = self.redis.xrange(key)
            elif kind == "zset":
                value = self.redis.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                value = self.redis.lrange(key, 0, -1)
            else:
                value = self.redis.smembers(key)
            out.append(f"{key!r} {kind} {value!r}")
        return "\n".join(out)


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


class SseReader:
    """Reads a call's event stream in a thread; events land in `events` as dicts."""

    def __init__(self, stack: AgentStack, call: str, token: str = ACME_TOKEN) -> None:
        self.raw: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.monotonic() of each event's arrival
        self.ended = threading.Event()
        self._response = requests.get(
            f"{stack.base}/v1/calls/{call}/events",
            headers={"Authorization": f"Bearer {token}"},
            stream=True,
            timeout=30,
        )
        assert self._response.status_code == 200, self._response.text
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        stack.readers.append(self)

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            for line in self._iter_lines():  # ends when the stream or the socket closes
                self.raw.append(line)
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
                elif line == "":
                    if data:
                        event = json.loads(data)
                        event.setdefault("type", kind)
                        if kind == "call.ended":
                            event["type"] = "call.ended"
                        self.received_at.append(time.monotonic())
                        self.events.append(event)
                    if kind == "call.ended":
                        return
                    kind, data = "message", ""
        except (requests.RequestException, OSError, AttributeError, ValueError):
            pass  # the test closed the stream
        finally:
            self.ended.set()

    def _iter_lines(self) -> Iterator[str]:
        yield from self._response.iter_lines(decode_unicode=True, chunk_size=1)

    def wait(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no matching event; got {[e.get('type') for e in self.events]}")

    def close(self) -> None:
        self._response.close()
        self._thread.join(2)
