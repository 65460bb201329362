"""The transcript peer (tests/esl/peer.py) extended for secure-trunk (agent-mode) calls.

What FreeSWITCH does that the IVR-only peer does not need:

* `bridge` stays up for the whole call (its EXECUTE_COMPLETE comes at the hang-up),
  and later `sendmsg execute` applications run on the caller's leg meanwhile, as
  FreeSWITCH runs them inside the bridge loop (switch_ivr_bridge.c);
* one `DTMF` event per key while a field is keyed (when the socket filters for it and
  `sensitive_dtmf` is off), paced like a person keying;
* `uuid_break` ends the collection running now, keeping what was keyed so far;
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


@dataclass(frozen=True)
class UntilBreak:
    """The caller keys `keys`, then waits (keying nothing) until the app breaks in."""

    keys: str = ""


AgentInput = Keys | Silence | HangUp | UntilBreak


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

    # -- commands ----------------------------------------------------------------------

    async def _command(self, block: str) -> bool:
        lines = block.split("\n")
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
        if not isinstance(step, Keys | Silence | HangUp | UntilBreak):
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
        return False

    def _key(self, key: str) -> None:
        """One key pressed by the caller: the DTMF event, and what the agent gets."""
        for path, masked in self.recordings.items():
            if not masked:
                self.leaks.append(f"digits keyed into unmasked recording {path}")
        if self.variables.get("sensitive_dtmf") != "true":
            self.emit("DTMF", DTMF_Digit=key)
        self.offer_to_agent(key)

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
