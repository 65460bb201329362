"""A fake FreeSWITCH that speaks the outbound event socket as the transcripts show.

Each FakeCall connects to the application's listening socket (as FreeSWITCH does for
`socket host:port async full`), answers its commands with the captured replies and
emits captured events rewritten for this call: url-encoded connect reply without
Content-Length, events interleaved with command replies, linger and disconnect
notices in either order, the hang-up sequence, and `play_and_get_digits` leaving the
collected digits in a channel variable that rides on every later event until unset.

A scripted caller answers each digit collection (Keys / Silence / HangUp). The call
keeps what a real call would leak if the application got something wrong
(`leaks`): digits keyed into an unmasked recording, DTMF logged because
sensitive_dtmf was off, card digits left in a variable when the CDR is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from tests.esl import transcripts
from tests.esl.transcripts import url_encode
from tests.esl.unicast_caller import ENDS_UNICAST, Press, Speak, UnicastCaller

DIGITS = set("0123456789ABCD")


@dataclass(frozen=True)
class Keys:
    """The caller keys these DTMF keys (a trailing # or * is the terminator)."""

    keys: str


@dataclass(frozen=True)
class Silence:
    """The caller keys nothing until the collection times out."""


@dataclass(frozen=True)
class HangUp:
    """The caller keys `keys` (maybe none), then hangs up mid-field."""

    keys: str = ""


Input = Keys | Silence | HangUp | Speak | Press


@dataclass
class CallScript:
    """What the fake call does besides answering commands."""

    sip_headers: dict[str, str]
    inputs: list[Input] = field(default_factory=list)
    sensitive_dtmf: bool = True  # set by the payivr dialplan before the socket
    refer_ok: bool = True
    hangup_during: tuple[str, int] | None = None  # (app, nth run) caller hangs up
    drop_during: tuple[str, int] | None = None  # (app, nth run) the socket just closes
    linger_notice_first: bool = False  # notice before HANGUP_COMPLETE (both happen)
    app_delay_s: float = 0.0  # simulated duration of playback/say/collect
    recordings: tuple[str, ...] = ()  # recordings already running (e.g. by the CC trunk)
    call_id: str = ""
    caller_number: str = ""  # Caller-Caller-ID-Number (the ANI); "" keeps the transcript's
    dialled: str = ""  # the request URI user / Caller-Destination-Number
    # mod_fifo `fifo <queue> in`: "answered" (an agent takes the caller, they talk for
    # talk_s, then the call ends), "abandon" (the caller hangs up while waiting) or
    # "timeout" (fifo_orbit_exten's timeout passes: fifo_status TIMEOUT).
    queue: str = "answered"
    talk_s: float = 0.05


class FakeCall:
    """One call: the FreeSWITCH side of one outbound socket connection."""

    def __init__(self, script: CallScript) -> None:
        self.t = transcripts.load()
        self.script = script
        self.uuid = str(uuidlib.uuid4())
        self.inputs = list(script.inputs)
        self.variables: dict[str, str] = {}
        for name, value in self.t.connect:
            if name.startswith("variable_") and not name.startswith("variable_sip_h_"):
                self.variables[name[9:]] = _decode(value).replace(self.t.uuid, self.uuid)
        for name, value in script.sip_headers.items():
            self.variables[f"sip_h_{name}"] = value
        self.variables["sip_call_id"] = script.call_id or f"{self.uuid}@127.0.0.1"
        if script.sensitive_dtmf:
            self.variables["sensitive_dtmf"] = "true"
        self.recordings: dict[str, bool] = {path: False for path in script.recordings}
        self.sent = bytearray()  # FreeSWITCH -> app
        self.received = bytearray()  # app -> FreeSWITCH
        self.played: list[tuple[str, str]] = []
        self.apis: list[str] = []
        self.events_sent: list[str] = []
        self.leaks: list[str] = []
        self.errors: list[str] = []
        self.bye_headers: dict[str, str] | None = None
        self.refer: tuple[str, dict[str, str]] | None = None
        self.bridge: tuple[str, dict[str, str]] | None = None
        self.cdr: dict[str, str] | None = None
        self.returned_to_dialplan = False
        self.hungup = False
        self.finished = asyncio.Event()
        # Per-step overhead of the application: from FreeSWITCH's message the app was
        # waiting for (EXECUTE_COMPLETE, a reply) to the app's next command.
        self.reaction_times: list[float] = []
        self._waiting_since: float | None = None
        self._filters: set[tuple[str, str]] = set()
        self._myevents = False
        self._linger: int | None = None
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._app_runs: dict[str, int] = {}
        self._seq = 1000
        self._templates: dict[str, list[tuple[str | None, str]]] = {}
        self._variable_lines: dict[str, tuple[str, str]] = {}
        self._last_complete = 0.0
        # Speech input: the unicast streams asked for and the one that is live.
        self.unicast_requests: list[dict[str, str]] = []
        self.unicast: UnicastCaller | None = None
        self.unicast_ended_by: str | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # kept: asyncio holds weak refs
        self._talk: asyncio.Task[None] | None = None
        self._overrides: dict[str, str] = {}
        if script.caller_number:
            self._overrides["Caller-Caller-ID-Number"] = script.caller_number
        if script.dialled:
            self._overrides["Caller-Destination-Number"] = script.dialled
            self.variables["sip_req_user"] = script.dialled
            self.variables["destination_number"] = script.dialled

    # -- wire ----------------------------------------------------------------------

    async def run(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        self._writer = writer
        worker = asyncio.create_task(self._app_worker())
        try:
            await asyncio.wait_for(self._read_commands(reader), timeout)
        except (TimeoutError, ConnectionError) as exc:
            self.errors.append(f"peer: {type(exc).__name__}")
        finally:
            worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.finished.set()

    async def _read_commands(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            self.received += data
            if self._waiting_since is not None:
                self.reaction_times.append(time.perf_counter() - self._waiting_since)
                self._waiting_since = None
            buf += data
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                if await self._command(block.decode()):
                    return

    def _send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self.sent += data
            self._writer.write(data)

    def _reply(self, text: str) -> None:
        self._send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())
        self._waiting_since = time.perf_counter()

    async def _command(self, block: str) -> bool:
        """Handle one command; True when the socket is to be closed."""
        lines = block.split("\n")
        cmd = lines[0].strip()
        if cmd == "connect":
            self._send(self._connect_reply())
        elif cmd.startswith("myevents"):
            self._myevents = True
            self._reply("+OK Events Enabled")
        elif cmd.startswith("event "):
            self._reply("+OK event listener enabled plain")
        elif cmd.startswith("filter "):
            _, name, value = cmd.split(" ", 2)
            self._filters.add((name, value))
            self._reply(f"+OK filter added. [{name}]=[{value}]")
        elif cmd == "linger" or cmd.startswith("linger "):
            parts = cmd.split(" ")
            self._linger = int(parts[1]) if len(parts) > 1 else -1
            self._reply(
                "+OK will linger" if self._linger < 0 else f"+OK will linger {self._linger} seconds"
            )
        elif cmd == "sendmsg":
            headers = dict(line.split(": ", 1) for line in lines[1:] if line)
            self._reply("+OK")
            if headers.get("call-command") == "unicast":
                self._start_unicast(headers)
            if headers.get("call-command") == "execute":
                self._queue.put_nowait(
                    (
                        headers["execute-app-name"],
                        headers.get("execute-app-arg", ""),
                        headers.get("Event-UUID", ""),
                    )
                )
        elif cmd.startswith("api "):
            body = self._api(cmd[4:]).encode()
            head = f"Content-Type: api/response\nContent-Length: {len(body)}\n\n"
            self._send(head.encode() + body)
            self._waiting_since = time.perf_counter()
        elif cmd == "exit":
            if not self.hungup:
                self.returned_to_dialplan = True
            self._reply("+OK bye")
            self._send(self._notice(self.t.disconnect_notice))
            return True
        else:
            self._reply("-ERR command not found")
        return False

    def _start_unicast(self, headers: dict[str, str]) -> None:
        self.unicast_requests.append(headers)
        if len(self.unicast_requests) > 1 or self.hungup:
            return  # FreeSWITCH tears a second unicast down 20 ms later: no audio
        self.unicast = UnicastCaller(self, headers)
        self._tasks.add(asyncio.ensure_future(self.unicast.start()))

    def _end_unicast(self, why: str) -> None:
        if self.unicast is not None and self.unicast_ended_by is None:
            self.unicast.stop()
            self.unicast_ended_by = why

    def caller_hangs_up(self) -> None:
        """The caller hangs up while streamed (a HangUp input during speech)."""
        self._end_unicast("hangup")
        self._caller_hangup()
        self._tasks.add(asyncio.ensure_future(self._after_hangup()))

    def _connect_reply(self) -> bytes:
        out, placed = [], False
        for name, value in self.t.connect:
            if name.startswith("variable_"):
                if not placed:
                    out += [f"variable_{k}: {url_encode(v)}" for k, v in self.variables.items()]
                    placed = True
                continue
            if name in self._overrides:
                value = url_encode(self._overrides[name])
            out.append(f"{name}: {value.replace(self.t.uuid, self.uuid)}")
        return ("\n".join(out) + "\n\n").encode()

    def _notice(self, template: bytes) -> bytes:
        original = re.search(rb"Controlled-Session-UUID: (\S+)", template)
        assert original is not None
        data = template.replace(original.group(1), self.uuid.encode())
        if self._linger is not None:
            data = re.sub(rb"Linger-Time: -?\d+", f"Linger-Time: {self._linger}".encode(), data)
        return data

    def emit(self, name: str, **overrides: str) -> None:
        if not self._passes(name):
            return
        header_overrides = {k.replace("_", "-"): v for k, v in overrides.items()}
        self._seq += 1
        header_overrides["Event-Sequence"] = str(self._seq)
        header_overrides["Event-Date-Timestamp"] = str(int(time.time() * 1e6))
        out, placed = [], False
        for key, line in self._template(name):
            if key is None:
                if not placed:
                    out += [self._variable_line(k, v) for k, v in self.variables.items()]
                    placed = True
                continue
            if key in header_overrides:
                out.append(f"{key}: {url_encode(header_overrides.pop(key))}")
            else:
                out.append(line)
        out += [
            f"{k}: {url_encode(v)}"
            for k, v in header_overrides.items()
            if k.startswith(("Application", "Hangup"))
        ]
        body = ("\n".join(out) + "\n\n").encode()
        self.events_sent.append(name)
        self._send(
            f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body
        )
        if name == "CHANNEL_EXECUTE_COMPLETE":
            self._waiting_since = time.perf_counter()

    def _template(self, name: str) -> list[tuple[str | None, str]]:
        """The captured event's lines for this call (key None: the variables' place)."""
        cached = self._templates.get(name)
        if cached is None:
            orig_uuid, lines = self.t.event_lines(name)
            cached = [
                (None, "") if key.startswith("variable_")
                else (key, f"{key}: {value.replace(orig_uuid, self.uuid)}")
                for key, value in lines
            ]  # fmt: skip
            self._templates[name] = cached
        return cached

    def _variable_line(self, name: str, value: str) -> str:
        cached = self._variable_lines.get(name)
        if cached is None or cached[0] is not value:
            cached = (value, f"variable_{name}: {url_encode(value)}")
            self._variable_lines[name] = cached
        return cached[1]

    def _passes(self, name: str) -> bool:
        """myevents plus filters: FreeSWITCH's filters are an allow-list (any match)."""
        if not self._myevents:
            return False
        if not self._filters:
            return True
        known = {"Event-Name": name, "Unique-ID": self.uuid}
        return any(known.get(key) == value for key, value in self._filters)

    # -- applications ----------------------------------------------------------------

    async def _app_worker(self) -> None:
        while True:
            app, arg, event_uuid = await self._queue.get()
            if self.hungup:
                continue
            try:
                await self._run_app(app, arg, event_uuid)
            except Exception as exc:  # a peer bug must fail the test, not hang it
                self.errors.append(f"peer {app}: {type(exc).__name__}: {exc}")
                raise

    async def _run_app(self, app: str, arg: str, event_uuid: str) -> None:
        self._app_runs[app] = self._app_runs.get(app, 0) + 1
        if app in ENDS_UNICAST:
            self._end_unicast(app)
        ids = {"Application": app, "Application_Data": arg, "Application_UUID": event_uuid}
        self.emit("CHANNEL_EXECUTE", **ids)
        if self.script.drop_during == (app, self._app_runs[app]):
            self.hungup = True  # FreeSWITCH went away: no events, no notices
            if self._writer is not None:
                self._writer.close()
            return
        if self.script.hangup_during == (app, self._app_runs[app]):
            if app in ("playback", "say"):
                self.played.append((app, arg))  # started, then the caller left
            self._caller_hangup()
            self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response="_none_", **ids)
            await self._after_hangup()
            return
        response, hangup_cause = "_none_", None
        if app in ("playback", "say"):
            self.played.append((app, arg))
            await asyncio.sleep(self.script.app_delay_s)
            response = "FILE PLAYED" if app == "playback" else "_none_"
        elif app == "play_and_get_digits":
            await asyncio.sleep(self.script.app_delay_s)
            if self._collect(arg):
                self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response="_none_", **ids)
                await self._after_hangup()
                return
        elif app == "set":
            name, _, value = arg.partition("=")
            self._setvar(name, value)
        elif app == "unset":
            self.variables.pop(arg, None)
        elif app == "record_session":
            self.recordings[arg] = False
        elif app in ("record_session_mask", "record_session_unmask"):
            if arg in self.recordings:
                self.recordings[arg] = app.endswith("_mask")
        elif app == "hangup":
            hangup_cause = arg or "NORMAL_CLEARING"
        elif app == "deflect":
            # As mod_sofia 1.10.12 (SWITCH_MESSAGE_INDICATE_DEFLECT): the REFER's final
            # status lands in sip_refer_status_code; unless sip_refer_continue_after_reply
            # is true, the channel is then hung up (BLIND_TRANSFER) whatever the answer.
            self.refer = (arg, self._sip_headers("sip_h_"))
            self.variables["sip_refer_status_code"] = "202" if self.script.refer_ok else "603"
            if self.variables.get("sip_refer_continue_after_reply") != "true":
                hangup_cause = "BLIND_TRANSFER"
        elif app == "fifo":
            self.played.append((app, arg))
            await asyncio.sleep(self.script.app_delay_s)
            if self.script.queue == "abandon":
                self._caller_hangup()
                self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response="_none_", **ids)
                await self._after_hangup()
                return
            if self.script.queue == "timeout":
                self.variables["fifo_status"] = "TIMEOUT"
            else:  # an agent's leg takes the caller (mod_fifo, the consumer side)
                self.variables["fifo_serviced_uuid"] = str(uuidlib.uuid4())
                self.variables["fifo_status"] = "TALKING"
                self._talk = asyncio.get_running_loop().create_task(self._agent_talk())
        elif app == "bridge":
            self.bridge = (arg, self._sip_headers("sip_h_"))
            self.emit("CHANNEL_BRIDGE")
            self.emit("CHANNEL_UNBRIDGE")
        if hangup_cause is not None:
            self._hangup(hangup_cause, by_app=True)
            self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response=response, **ids)
            await self._after_hangup()
            return
        self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response=response, **ids)

    async def _agent_talk(self) -> None:
        """Caller and agent talk, then the agent hangs up: the caller's leg ends."""
        await asyncio.sleep(self.script.talk_s)
        if not self.hungup:
            self._hangup("NORMAL_CLEARING", by_app=False)
            await self._after_hangup()

    def _collect(self, arg: str) -> bool:
        """play_and_get_digits with the caller's next input; True if the caller hung up."""
        args = arg.split(" ")
        min_d, max_d, terms, var, regex = int(args[0]), int(args[1]), args[4], args[7], args[8]
        self.played.append(("play_and_get_digits", args[5]))
        if args[2] != "1":
            self.errors.append("play_and_get_digits with retries inside FreeSWITCH")
        self.variables.pop("read_result", None)
        self.variables.pop(var, None)
        self.variables.pop(var + "_invalid", None)
        if self.inputs:
            step = self.inputs.pop(0)
        else:
            self.errors.append("more collections than scripted inputs")
            step = Silence()
        keys = step.keys if isinstance(step, Keys | HangUp) else ""
        buffer, terminator = "", ""
        for key in keys:
            if key in terms:
                terminator = key
                break
            buffer += key
            if len(buffer) >= max_d:
                break
        if keys:
            for path, masked in self.recordings.items():
                if not masked:
                    self.leaks.append(f"digits keyed into unmasked recording {path}")
            if self.variables.get("sensitive_dtmf") != "true":
                self.leaks.append("DTMF logged at INFO and relayed (sensitive_dtmf not true)")
        if terminator:
            self.variables["read_terminator_used"] = terminator
        ok = len(buffer) >= min_d
        if isinstance(step, HangUp):
            self._caller_hangup()
        self.variables["read_result"] = "success" if ok else "failure"
        if buffer:
            self.variables[var] = buffer
            if ok and not re.search(regex, buffer):
                del self.variables[var]
                self.variables[var + "_invalid"] = buffer
        return isinstance(step, HangUp)

    def _setvar(self, name: str, value: str | None) -> None:
        if value:
            self.variables[name] = value
        else:
            self.variables.pop(name, None)

    def _sip_headers(self, prefix: str) -> dict[str, str]:
        return {k[len(prefix) :]: v for k, v in self.variables.items() if k.startswith(prefix)}

    def _caller_hangup(self) -> None:
        self._hangup("NORMAL_CLEARING", by_app=False)

    def _hangup(self, cause: str, *, by_app: bool) -> None:
        self.hungup = True
        self._end_unicast("hangup")
        if by_app and cause != "BLIND_TRANSFER":
            self.bye_headers = self._sip_headers("sip_bye_h_")
        self.emit("CHANNEL_HANGUP", Hangup_Cause=cause)

    async def _after_hangup(self) -> None:
        """The tail FreeSWITCH sends after a hang-up, notices in the scripted order."""
        self.emit(
            "CHANNEL_EXECUTE_COMPLETE",
            Application="socket",
            Application_Response="_none_",
            Application_UUID=str(uuidlib.uuid4()),
            Application_Data=f"{self.variables.get('socket_host', '127.0.0.1')} async full",
        )
        if self.script.linger_notice_first and self._linger is not None:
            self._send(self._notice(self.t.linger_notice))
        self.cdr = dict(self.variables)
        self._check_cdr()
        self.emit("CHANNEL_HANGUP_COMPLETE")
        if not self.script.linger_notice_first and self._linger is not None:
            self._send(self._notice(self.t.linger_notice))
        if self._linger is None:
            self._send(self._notice(self.t.disconnect_notice))
            if self._writer is not None:
                self._writer.close()
        elif self._linger > 0:
            asyncio.get_running_loop().call_later(self._linger, self._linger_expired)

    def _linger_expired(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._send(self._notice(self.t.disconnect_notice))
            self._writer.close()

    def _check_cdr(self) -> None:
        for name, value in (self.cdr or {}).items():
            if name.startswith("payivr_dtmf_") and value:
                self.leaks.append(f"keyed digits left in channel variable {name} at hang-up")

    # -- API -------------------------------------------------------------------------

    def _api(self, command: str) -> str:
        self.apis.append(command)
        name, _, rest = command.partition(" ")
        if name in (
            "uuid_setvar",
            "uuid_setvar_multi",
            "uuid_buglist",
            "uuid_record",
            "uuid_deflect",
            "uuid_getvar",
        ):
            target, _, rest = rest.partition(" ")
            if target != self.uuid:
                return "-ERR No such channel!\n"
        if name == "uuid_setvar":
            parts = rest.split(" ", 1)
            self._setvar(parts[0], parts[1] if len(parts) > 1 else None)
            return "+OK\n"
        if name == "uuid_setvar_multi":
            for pair in rest.split(";"):
                var, _, value = pair.partition("=")
                self._setvar(var, value)
            return "+OK\n"
        if name == "uuid_buglist":
            bugs = "".join(
                f" <media-bug>\n  <function>session_record</function>\n  <target>{p}</target>\n"
                "  <thread-locked>0</thread-locked>\n </media-bug>\n"
                for p in self.recordings
            )
            return f"<media-bugs>\n{bugs}</media-bugs>\n"
        if name == "uuid_record":
            action, _, path = rest.partition(" ")
            if action in ("mask", "unmask") and path in self.recordings:
                self.recordings[path] = action == "mask"
                return "+OK Success\n"
            return f"-ERR Cannot {action} recording session!\n"
        if name == "uuid_deflect":
            self.refer = (rest, self._sip_headers("sip_h_"))
            return "+OK:SIP/2.0 200 OK\r\n"
        if name == "uuid_getvar":
            return self.variables.get(rest.strip(), "_undef_")
        return f"-ERR {name} Command not found!\n"


def _decode(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


async def run_call(script: CallScript, port: int, *, timeout: float = 30.0) -> FakeCall:
    """Connect one fake call to the application on 127.0.0.1:port and run it to the end."""
    call = FakeCall(script)
    await call.run("127.0.0.1", port, timeout=timeout)
    return call
