"""One outbound event-socket connection (asyncio): FreeSWITCH connected to us for a call.

The reader task splits the stream into messages and routes them: replies
(`command/reply`, `api/response`) resolve the oldest waiting command, in order, as the
protocol answers commands in order; events resolve executions by their
Application-UUID; disconnect notices and EOF end everything that still waits with
CallerGone. A socket that ends before any sign of a hang-up (CHANNEL_HANGUP, its
COMPLETE, the linger notice) and that payivr did not close is `media_lost`: the
FreeSWITCH behind it died, the caller did not hang up. Events may interleave with
replies at any point and the linger and disconnect notices may come before or after
the hang-up events: nothing here assumes an order the transcripts do not guarantee.

Events are never logged (they carry channel variables), and card-data variables are
never even decoded to `str` (see payivr.esl.codec).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Iterable, Mapping

from payivr.esl.channel import CallerGone, ChannelCommandError, ExecuteResult
from payivr.esl.codec import (
    HeaderMap,
    Message,
    ProtocolError,
    StreamParser,
    encode_command,
    encode_sendmsg,
)

log = logging.getLogger("payivr.esl")

READ_CHUNK = 65536
# Events the application subscribes to; everything else (DTMF above all) stays in
# FreeSWITCH. `myevents` alone would also deliver DTMF events when a dialplan forgot
# sensitive_dtmf, so the filters are part of the card-data protection.
SUBSCRIBED_EVENTS = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")


class EslConnection:
    """The asyncio implementation of CallChannel over an accepted outbound socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = StreamParser()
        self._replies: deque[asyncio.Future[Message]] = deque()
        self._executions: dict[str, asyncio.Future[Message]] = {}
        self._channel_data: Mapping[str, str] = HeaderMap({}, decode=False)
        self._uuid = ""
        self._hungup = asyncio.Event()
        self._hangup_complete = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False  # payivr said `exit` or closed the socket itself
        self._media_lost = False
        self._reader_task: asyncio.Task[None] | None = None
        self.hangup_cause: str | None = None
        self.socket_mode = ""
        # Per-step overhead: from the message a step waited for (a reply, its
        # EXECUTE_COMPLETE) to the next command sent. Seconds, for stats/benchmarks.
        self.step_overheads: list[tuple[str, float]] = []
        self._woke_at: float | None = None

    # -- the CallChannel interface -------------------------------------------------

    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def channel_data(self) -> Mapping[str, str]:
        return self._channel_data

    @property
    def hungup(self) -> bool:
        return self._hungup.is_set() or self._closed.is_set()

    @property
    def media_lost(self) -> bool:
        """True when the socket ended with no hang-up before it and payivr did not
        close it: FreeSWITCH died (kill -9, a crash), the caller may still be there."""
        return self._media_lost

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def execute(
        self, app: str, arg: str = "", *, timeout: float | None = None, event_lock: bool = True
    ) -> ExecuteResult:
        """Run an application on the channel and await its EXECUTE_COMPLETE.

        `event_lock=False` for an application during which other applications must
        still run, nested (agent mode's long `bridge`): FreeSWITCH sets CF_EVENT_LOCK
        on the channel for the whole run of an application sent with `event-lock`,
        and while it is set the session's queued sendmsg executes are not taken
        (switch_core_session_private_event_count answers 0).
        """
        if self.hungup:
            raise CallerGone()
        event_uuid = str(uuidlib.uuid4())
        headers = [("call-command", "execute"), ("execute-app-name", app)]
        if arg:
            headers.append(("execute-app-arg", arg))
        if event_lock:
            headers.append(("event-lock", "true"))
        headers.append(("Event-UUID", event_uuid))
        done = _new_future()
        self._executions[event_uuid] = done
        try:
            reply = await self._send(encode_sendmsg(headers), timeout)
            _check_reply(reply)
            message = await self._wait(done, timeout)
        finally:
            self._executions.pop(event_uuid, None)
        event = message.event if message.event is not None else {}
        variables = (
            event.prefixed("variable_")
            if isinstance(event, HeaderMap)
            else {k[9:]: v for k, v in event.items() if k.startswith("variable_")}
        )
        return ExecuteResult(
            application=event.get("Application", app),
            response=event.get("Application-Response", ""),
            variables=variables,
            secrets=message.secrets,
            hungup=self.hungup,
        )

    async def send_message(self, headers: Mapping[str, str]) -> None:
        """A raw `sendmsg` (speech input's `unicast`: payivr.esl.unicast). Its `+OK`
        says only that FreeSWITCH took the message."""
        if self.hungup:
            raise CallerGone()
        _check_reply(await self._send(encode_sendmsg(headers), None))

    async def api(self, command: str, *, timeout: float | None = None) -> str:
        if self.closed:
            raise CallerGone()
        reply = await self._send(encode_command("api " + command), timeout)
        return reply.body.decode("utf-8", "replace")

    async def set_variables(self, values: Mapping[str, str]) -> None:
        if not values:
            return
        if all(";" not in v and "${" not in v for v in values.values()):
            pairs = ";".join(f"{name}={value}" for name, value in values.items())
            _check_api(await self.api(f"uuid_setvar_multi {self._uuid} {pairs}"))
            return
        for name, value in values.items():
            _check_api(await self.api(f"uuid_setvar {self._uuid} {name} {value}"))

    async def unset_variables(self, names: Iterable[str]) -> None:
        # `name=` with an empty value deletes the variable (switch_channel.c).
        pairs = ";".join(f"{name}=" for name in names)
        if pairs:
            _check_api(await self.api(f"uuid_setvar_multi {self._uuid} {pairs}"))

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        if self.hungup:
            return
        with contextlib.suppress(CallerGone):
            await self.execute("hangup", cause)

    # -- life cycle ----------------------------------------------------------------

    async def handshake(
        self,
        *,
        linger_s: int,
        timeout: float = 5.0,
        events: tuple[str, ...] = SUBSCRIBED_EVENTS,
    ) -> None:
        """connect, myevents, event filters, linger: pipelined, replies awaited in order."""
        self._reader_task = asyncio.create_task(self._read_loop(), name="esl-reader")
        commands = ["connect", "myevents"]
        commands += [f"filter Event-Name {name}" for name in events]
        commands.append(f"linger {linger_s}" if linger_s > 0 else "linger")
        # One write for all of them: each write is a send() whose loopback delivery
        # the kernel charges to this process (docs/esl.md, Benchmark).
        futures = self._send_all_nowait([encode_command(c) for c in commands])
        replies = [await self._wait(f, timeout) for f in futures]
        connect = replies[0]
        self._channel_data = connect.headers
        self._uuid = connect.headers.get("Unique-ID", "")
        self.socket_mode = connect.headers.get("Socket-Mode", "")
        if not self._uuid:
            raise ProtocolError("connect reply without Unique-ID")
        for reply in replies[1:]:
            _check_reply(reply)

    async def finish(self, *, timeout: float = 5.0) -> None:
        """Wait for CHANNEL_HANGUP_COMPLETE (bounded), say `exit`, wait for the close.

        If the channel is still up, `exit` hands it back to the dialplan, whose next
        action is the fallback that returns the call (the dialplan's job).
        """
        if self._hungup.is_set() and not self._closed.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._hangup_complete.wait(), timeout)
        if not self._closed.is_set():
            self._closing = True
            with contextlib.suppress(CallerGone, asyncio.TimeoutError, ConnectionError):
                await self._send(encode_command("exit"), timeout)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout)
        await self.close()

    async def close(self) -> None:
        self._closing = True
        self._mark_closed()
        with contextlib.suppress(Exception):
            self._writer.close()
            await self._writer.wait_closed()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task

    async def wait_hangup(self) -> None:
        await self._hungup.wait()

    # -- internals -----------------------------------------------------------------

    def _send_nowait(self, data: bytes) -> asyncio.Future[Message]:
        return self._send_all_nowait([data])[0]

    def _send_all_nowait(self, commands: list[bytes]) -> list[asyncio.Future[Message]]:
        """Write commands in one go; a future per command for its reply, in order."""
        if self._closed.is_set():
            raise CallerGone()
        if self._woke_at is not None:
            self.step_overheads.append((_label(commands[0]), time.perf_counter() - self._woke_at))
            self._woke_at = None
        futures = [_new_future() for _ in commands]
        # Append and write with no await in between: replies come back in this order.
        self._replies.extend(futures)
        self._writer.write(b"".join(commands))
        return futures

    async def _send(self, data: bytes, timeout: float | None) -> Message:
        future = self._send_nowait(data)
        await self._writer.drain()
        return await self._wait(future, timeout)

    async def _wait(self, future: asyncio.Future[Message], timeout: float | None) -> Message:
        if timeout is None:
            return await future
        return await asyncio.wait_for(future, timeout)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                for message in self._parser.feed(data):
                    self._dispatch(message)
        except (ConnectionError, ProtocolError) as exc:
            # The exception text names no header value; the reason is enough here. Before
            # the connect reply it is a port probe (readiness check), not a call: debug.
            log.log(
                logging.WARNING if self._uuid else logging.DEBUG,
                "esl socket %s ended: %s",
                self._uuid or "?",
                type(exc).__name__,
            )
        finally:
            if not self._hungup.is_set() and not self._closing and not self._closed.is_set():
                self._media_lost = True
            self._mark_closed()

    def _dispatch(self, message: Message) -> None:
        kind = message.content_type
        if kind in ("command/reply", "api/response"):
            message.wipe_secrets()
            if self._replies:
                future = self._replies.popleft()
                if not future.done():
                    future.set_result(message)
                    self._woke_at = time.perf_counter()
            return
        if kind == "text/event-plain":
            self._on_event(message)
            return
        if kind == "text/disconnect-notice":
            if message.headers.get("Content-Disposition") == "linger":
                # The channel hung up; FreeSWITCH lingers for the remaining events.
                self._hungup.set()
            return
        message.wipe_secrets()

    def _on_event(self, message: Message) -> None:
        name = message.event_name
        event = message.event if message.event is not None else {}
        if name == "CHANNEL_EXECUTE_COMPLETE":
            future = self._executions.get(event.get("Application-UUID", ""))
            if future is not None and not future.done():
                future.set_result(message)  # the waiter owns (and wipes) its secrets
                self._woke_at = time.perf_counter()
                return
        elif name == "CHANNEL_HANGUP":
            self.hangup_cause = event.get("Hangup-Cause")
            self._hungup.set()
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.hangup_cause = self.hangup_cause or event.get("Hangup-Cause")
            self._hungup.set()
            self._hangup_complete.set()
        # Any card data in an event nobody waits for (the socket application's own
        # EXECUTE_COMPLETE after a mid-field hang-up, HANGUP_COMPLETE) is zeroed now.
        message.wipe_secrets()

    def _mark_closed(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._hungup.set()
        self._hangup_complete.set()
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                future.set_exception(CallerGone())
        for future in self._executions.values():
            if not future.done():
                future.set_exception(CallerGone())


def _label(command: bytes) -> str:
    """What a command is, for overhead statistics: the application or API name."""
    if command.startswith(b"sendmsg"):
        start = command.find(b"execute-app-name: ")
        if start >= 0:
            end = command.find(b"\n", start)
            return command[start + 18 : end].decode("ascii", "replace")
        return "sendmsg"
    return (
        command.split(b" ", 2)[1 if command.startswith(b"api ") else 0]
        .strip()
        .decode("ascii", "replace")
    )


def _new_future() -> asyncio.Future[Message]:
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    # A command whose waiter already gave up (caller gone) must not leave a
    # "Future exception was never retrieved" line in the log.
    future.add_done_callback(_consume_exception)
    return future


def _consume_exception(future: asyncio.Future[Message]) -> None:
    if not future.cancelled():
        future.exception()


def _check_reply(reply: Message) -> None:
    text = reply.headers.get("Reply-Text", "")
    if text.startswith("-ERR"):
        raise ChannelCommandError(text)


def _check_api(body: str) -> None:
    if body.startswith("-ERR No such channel"):
        raise CallerGone()
    if body.startswith(("-ERR", "-USAGE")):
        raise ChannelCommandError(body.strip())
