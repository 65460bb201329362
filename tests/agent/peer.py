"""The transcript peer (tests/esl/peer.py) extended for secure-trunk (agent-mode) calls.

What FreeSWITCH does that the IVR-only peer does not need:

* `bridge` stays up for the whole call (its EXECUTE_COMPLETE comes at the hang-up),
  and later `sendmsg execute` applications run on the caller's leg meanwhile, as
  FreeSWITCH runs them inside the bridge loop (switch_ivr_bridge.c); each one that
  runs while bridged is written down in `bridged_apps` (the bridge is suspended
  while it runs);
* `uuid_displace <uuid> start|stop <file> [limit] [mux]` (mod_commands.c: `+OK
  Success`, or `-ERR Cannot locate session!`): written down in `displaced`;
* the digit machine of `bind_digit_action` (mod_dptools.c, switch_core_io.c): while
  it is on, each key is consumed by it (never queued: no DTMF event, no relay to the
  agent) and matched alone; the match is a plain event (switch_event_create_plain:
  no Event-Name, no channel headers) of `payivr_key: 1` and `digits: <key>`,
  queued on the session and sent to this socket only after `divert_events on`
  (mod_event_socket.c, past every filter), and `last_matching_digits` is left on
  the channel. `clear_digit_action all` ends it;
* the caller keys the next scripted input when payivr opens a field (`uuid_setvar
  <uuid> payivr_field <name>`), paced like a person keying, until the field closes
  (the variable is unset);
* one `DTMF` event per key otherwise (when the socket filters for it and
  `sensitive_dtmf` is off);
* the agent's leg (its uuid is the bridge's `origination_uuid`): `uuid_drop_dtmf`,
  `uuid_audio ... mute`, `uuid_setvar_multi`, `uuid_send_info`.

The agent's ear: every key the caller presses is also offered to the bridge (the
conservative case: a key pressed between two applications, when the bridge runs
again), and the peer writes down what the agent would get: the real key as RFC 2833
unless DTMF is dropped/masked for the agent leg or sensitive on the caller leg, and the
key's in-band tone unless the audio towards the agent is muted. A correct application
leaves only masking tones there while a payment runs, and real keys after it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from tests.esl.peer import CallScript, FakeCall, HangUp, Keys, Silence
from tests.esl.transcripts import url_encode


@dataclass(frozen=True)
class UntilBreak:
    """The caller keys `keys`, then waits (keying nothing) until the app breaks in."""

    keys: str = ""


@dataclass(frozen=True)
class Drop:
    """The caller keys `keys`, then FreeSWITCH dies (kill -9): the socket just closes,
    with no hang-up event and no disconnect notice."""

    keys: str = ""


AgentInput = Keys | Silence | HangUp | UntilBreak | Drop


@dataclass
class AgentEar:
    """What reached the agent's leg, per caller key."""

    rfc2833: list[str] = field(default_factory=list)  # digits received as telephone-event
    inband: list[str] = field(default_factory=list)  # keys whose tones were audible
    infos: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


class AgentFakeCall(FakeCall):
    def __init__(self, script: CallScript, *, key_delay_s: float = 0.01) -> None:
        super().__init__(script)
        self.key_delay_s = key_delay_s
        self.agent_uuid: str | None = None
        self.agent_vars: dict[str, str] = {}
        self.drop_dtmf: str | None = None  # None (off), "" (drop), or the mask digit/file
        self.agent_muted = False
        self.ear = AgentEar()
        self.breaks = 0
        self.collecting = asyncio.Event()
        self._break = asyncio.Event()
        self._bridge_uuid: str | None = None
        self.protection_log: list[tuple[str, bool, bool]] = []  # (when, drop, mute)
        self.diverted = False
        self.digit_machine = False
        self.displaced: list[tuple[str, str]] = []  # (start|stop, file)
        self.bridged_apps: list[str] = []  # applications run while the bridge was up
        self.key_events = 0  # digit-action events sent
        self._field_task: asyncio.Task[None] | None = None

    # -- commands ----------------------------------------------------------------------

    async def _command(self, block: str) -> bool:
        lines = block.split("\n")
        if lines[0].strip().startswith("divert_events"):
            self.diverted = lines[0].strip().endswith(" on")
            self._reply("+OK events diverted" if self.diverted else "+OK events not diverted")
            return False
        if lines[0].strip() == "sendmsg":
            headers = dict(line.split(": ", 1) for line in lines[1:] if line)
            if headers.get("execute-app-name") == "bridge":
                self._reply("+OK")
                self._start_bridge(headers.get("execute-app-arg", ""), headers["Event-UUID"])
                return False
        return await super()._command(block)

    def _start_bridge(self, arg: str, event_uuid: str) -> None:
        match = re.search(r"origination_uuid=([0-9a-f-]+)", arg)
        self.agent_uuid = match.group(1) if match else None
        self.bridge = (arg, self._sip_headers("sip_h_"))
        self._bridge_uuid = event_uuid
        ids = {"Application": "bridge", "Application_Data": arg, "Application_UUID": event_uuid}
        self.emit("CHANNEL_EXECUTE", **ids)
        self.emit("CHANNEL_BRIDGE")

    def _hangup(self, cause: str, *, by_app: bool) -> None:
        super()._hangup(cause, by_app=by_app)
        if self._bridge_uuid is not None:
            self.emit("CHANNEL_UNBRIDGE")
            self.emit(
                "CHANNEL_EXECUTE_COMPLETE",
                Application="bridge",
                Application_Response="_none_",
                Application_UUID=self._bridge_uuid,
            )
            self._bridge_uuid = None

    async def hang_up_now(self) -> None:
        """The caller hangs up while nothing runs (e.g. after the payments)."""
        if not self.hungup:
            self._caller_hangup()
            await self._after_hangup()

    # -- applications ------------------------------------------------------------------

    async def _run_app(self, app: str, arg: str, event_uuid: str) -> None:
        if self._bridge_uuid is not None:
            self.bridged_apps.append(app)
        if app in ("bind_digit_action", "clear_digit_action"):
            ids = {"Application": app, "Application_Data": arg, "Application_UUID": event_uuid}
            self.emit("CHANNEL_EXECUTE", **ids)
            if app == "bind_digit_action":
                if arg.split(",")[:3] != ["payivr", "~^[0-9*#]$", "payivr_key"]:
                    self.errors.append(f"unexpected digit action {arg}")
                self.digit_machine = True
            elif arg == "all":
                self.digit_machine = False
            self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response="_none_", **ids)
            return
        if app != "play_and_get_digits":
            await super()._run_app(app, arg, event_uuid)
            return
        self._app_runs[app] = self._app_runs.get(app, 0) + 1
        ids = {"Application": app, "Application_Data": arg, "Application_UUID": event_uuid}
        self.emit("CHANNEL_EXECUTE", **ids)
        hung = await self._collect_keys(arg)
        self.emit("CHANNEL_EXECUTE_COMPLETE", Application_Response="_none_", **ids)
        if hung:
            await self._after_hangup()

    async def _collect_keys(self, arg: str) -> bool:
        args = arg.split(" ")
        min_d, max_d, terms, var, regex = int(args[0]), int(args[1]), args[4], args[7], args[8]
        self.played.append(("play_and_get_digits", args[5]))
        for name in ("read_result", var, var + "_invalid"):
            self.variables.pop(name, None)
        step: AgentInput = self.inputs.pop(0) if self.inputs else Silence()
        if not isinstance(step, Keys | Silence | HangUp | UntilBreak | Drop):
            self.errors.append("unknown input")
        self._break.clear()
        self.collecting.set()
        keys = "" if isinstance(step, Silence) else step.keys
        buffer, terminator = "", ""
        try:
            for key in keys:
                await asyncio.sleep(self.key_delay_s)
                if self._break.is_set():
                    break
                self._key(key)
                if key in terms:
                    terminator = key
                    break
                buffer += key
                if len(buffer) >= max_d:
                    break
            if isinstance(step, UntilBreak) and not self._break.is_set():
                await self._break.wait()
        finally:
            self.collecting.clear()
        if terminator:
            self.variables["read_terminator_used"] = terminator
        ok = len(buffer) >= min_d
        self.variables["read_result"] = "success" if ok else "failure"
        if buffer:
            self.variables[var] = buffer
            if ok and not re.search(regex, buffer):
                del self.variables[var]
                self.variables[var + "_invalid"] = buffer
        if isinstance(step, HangUp):
            self._caller_hangup()
            return True
        if isinstance(step, Drop):
            self._die()
        return False

    def _die(self) -> None:
        """FreeSWITCH is killed: nothing more from it, no events, no notices."""
        self.hungup = True
        if self._writer is not None:
            self._writer.close()

    async def _key_field(self) -> None:
        """The caller keys the next scripted input into the field payivr opened."""
        step: AgentInput = self.inputs.pop(0) if self.inputs else Silence()
        keys = "" if isinstance(step, Silence | HangUp) else step.keys
        for key in keys:
            await asyncio.sleep(self.key_delay_s)
            if "payivr_field" not in self.variables or self.hungup:
                break
            self._key(key)
        if isinstance(step, UntilBreak):
            while "payivr_field" in self.variables and not self.hungup:
                await asyncio.sleep(0.005)
            self.breaks += 1
        if isinstance(step, HangUp) and not self.hungup:
            self._caller_hangup()
            await self._after_hangup()
        if isinstance(step, Drop):
            self._die()

    def _key(self, key: str) -> None:
        """One key pressed by the caller: the DTMF event, and what the agent gets."""
        for path, masked in self.recordings.items():
            if not masked:
                self.leaks.append(f"digits keyed into unmasked recording {path}")
        if self.digit_machine:
            # Consumed by the digit machine: no DTMF event, nothing relayed.
            self.variables["last_matching_digits"] = key
            if self.diverted and self._myevents:
                self._send_key_event(key)
            return
        if self.variables.get("sensitive_dtmf") != "true":
            self.emit("DTMF", DTMF_Digit=key)
        self.offer_to_agent(key)

    def _check_cdr(self) -> None:
        super()._check_cdr()
        if (self.cdr or {}).get("last_matching_digits"):
            self.leaks.append("a keyed digit left in last_matching_digits at hang-up")

    def _send_key_event(self, key: str) -> None:
        """mod_dptools' digit_action_callback event (switch_event_create_plain: only the
        binding's header and the matched digits, as FreeSWITCH 1.10.12 sends it)."""
        body = f"payivr_key: 1\ndigits: {url_encode(key)}\n\n".encode()
        self.key_events += 1
        self.events_sent.append("digit-action")
        self._send(
            f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body
        )

    def offer_to_agent(self, key: str) -> None:
        """A key on the caller's leg reaching the bridge: what the agent's leg gets."""
        if self.agent_uuid is None:
            return
        if self.drop_dtmf is not None:
            if self.drop_dtmf:
                self.ear.rfc2833.append(self.drop_dtmf)
        elif self.variables.get("sensitive_dtmf") != "true":
            self.ear.rfc2833.append(key)
        if not self.agent_muted:
            self.ear.inband.append(key)

    # -- API ---------------------------------------------------------------------------

    def _api(self, command: str) -> str:
        name, _, rest = command.partition(" ")
        target, _, tail = rest.partition(" ")
        if name == "uuid_displace":
            self.apis.append(command)
            if target != self.uuid or self.hungup:
                return "-ERR Cannot locate session!\n"
            parts = tail.split(" ")
            if len(parts) < 2 or parts[0] not in ("start", "stop"):
                return "-USAGE: <uuid> [start|stop] <path> [<limit>] [mux]\n"
            self.displaced.append((parts[0], parts[1]))
            if parts[0] == "start":
                self.played.append(("displace", parts[1]))
                runs = self._app_runs["displace"] = self._app_runs.get("displace", 0) + 1
                if self.script.hangup_during == ("displace", runs):
                    asyncio.get_running_loop().create_task(self.hang_up_now())
            return "+OK Success\n"
        if name == "uuid_setvar" and target == self.uuid and tail.startswith("payivr_field"):
            reply = super()._api(command)
            if tail.strip() != "payivr_field":
                self._field_task = asyncio.get_running_loop().create_task(self._key_field())
            return reply
        if name == "uuid_break" and target == self.uuid:
            self.apis.append(command)
            self.breaks += 1
            self._break.set()
            return "+OK\n"
        if self.agent_uuid is None or target != self.agent_uuid:
            return super()._api(command)
        self.apis.append(command)
        if self.hungup:
            return "-ERR No such channel!\n"
        if name == "uuid_drop_dtmf":
            parts = tail.split(" ")
            # As FreeSWITCH 1.10.12 (mod_commands.c): four arguments or -USAGE, "off"
            # included; a mask of non-DTMF characters sends nothing.
            if len(parts) < 3 or parts[1] not in ("mask_digits", "mask_file"):
                return "-USAGE: <uuid> [on | off ] [ mask_digits <digits> | mask_file <file>]\n"
            if parts[0] == "on":
                mask = parts[2]
                if parts[1] == "mask_digits":
                    mask = "".join(c for c in mask if c in "0123456789*#ABCD")
                self.drop_dtmf = mask
            elif parts[0] == "off":
                self.drop_dtmf = None
            else:
                return "-USAGE: <uuid> [on | off ] [ mask_digits <digits> | mask_file <file>]\n"
            self.protection_log.append((parts[0], self.drop_dtmf is not None, self.agent_muted))
            return f"+OK {target} is dropping DTMF. mask_file: NONE mask_digits: 0\n"
        if name == "uuid_audio":
            parts = tail.split(" ")
            if parts[0] == "stop":
                self.agent_muted = False
            elif parts[:3] == ["start", "write", "mute"] and len(parts) == 4:
                self.agent_muted = parts[3] != "0"
            else:
                return "-USAGE: <uuid> [start [read|write] [mute|level <level>]|stop]\n"
            return "+OK\n"
        if name == "uuid_setvar_multi":
            for pair in tail.split(";"):
                var, _, value = pair.partition("=")
                if value:
                    self.agent_vars[var] = value
                else:
                    self.agent_vars.pop(var, None)
            return "+OK\n"
        if name == "uuid_send_info":
            parts = tail.split(" ", 2)
            headers = {
                k[len("sip_info_h_") :]: v
                for k, v in self.agent_vars.items()
                if k.startswith("sip_info_h_")
            }
            self.ear.infos.append((f"{parts[0]}/{parts[1]}", parts[2], headers))
            return "+OK Success\n"
        return f"-ERR {name} Command not found!\n"


async def wait_for(predicate: object, timeout: float = 5.0, step: float = 0.01) -> None:
    """Poll a zero-argument callable until it is true (bounded)."""
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)
