"""`payivr demo`: one payment end to end on the local stack, printed as it goes.

Without FreeSWITCH (Debian has none; see FREESWITCH_HINT) everything else runs for
real: a SIPp UAC (the contact center) sends a signed payment INVITE to Kamailio,
which checks it, stores the session in Redis and relays the call to a SIPp UAS
standing in for FreeSWITCH; the session is then driven through the capture plan as
`payivr simulate` drives it, with a sandbox card, against the sandbox processor; the
result is recorded through the session store (outbox), the callback worker delivers
the signed callback to a local receiver, and the stand-in ends the call with a BYE
carrying the signed result headers, which the contact center receives via Kamailio.

With FreeSWITCH (FREESWITCH_BIN or on PATH) the call goes to it and to the ESL
application instead; see payivr.stack.demo_freeswitch.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TextIO

from payivr.core.config import Config, MerchantConfig
from payivr.core.request import PaymentRequest
from payivr.core.result import PaymentResult, verify_result_headers
from payivr.core.signature import verify_callback
from payivr.stack.layout import StackLayout
from payivr.stack.ports import free_port
from payivr.stack.receiver import CallbackReceiver, ReceivedCallback
from payivr.stack.sipp import (
    Sipp,
    contact_center,
    received_bye_headers,
    send_result_info,
    standin_freeswitch,
    wait_for_session,
    write_injection,
)
from payivr.stack.up import FREESWITCH_HINT, find_freeswitch, stack_down, stack_up

# The public Visa test number (SPEC 8: any Luhn-valid card not listed is approved).
DEMO_CARD = "4111111111111111"
DEMO_CVV = "123"
NO_SPEECH_WITHOUT_FREESWITCH = (
    "speech: the request asked for spoken card data (X-Pay-Input: speech), but without "
    "FreeSWITCH there is no call audio to listen to: each listen fell back to the keypad, "
    "as for a language without a recogniser, and the card was keyed"
)


class DemoError(Exception):
    """The demo could not complete; the message says which step and why."""


@dataclass
class DemoReport:
    """What the demo saw, for its printout and for the tests."""

    session_id: str = ""
    call_id: str = ""
    result: str = ""
    bye_headers: list[tuple[str, str]] = field(default_factory=list)
    callback_headers: dict[str, str] = field(default_factory=dict)
    callback_body: bytes = b""
    callback_signature_ok: bool = False
    result_signature_ok: bool = False
    missing: list[str] = field(default_factory=list)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        """The result came back both ways, signed, and the same both ways (whatever it
        was: a declined sandbox card is a successful demo of a decline)."""
        bye = {k.lower(): v for k, v in self.bye_headers}
        try:
            callback_result = json.loads(self.callback_body)["result"]
        except (ValueError, KeyError, TypeError):
            return False
        return (
            bool(self.result)
            and bye.get("x-pay-result") == self.result == callback_result
            and self.callback_signature_ok
            and self.result_signature_ok
        )

    def read_bye(self, uac: Sipp, merchant: MerchantConfig, call_id: str, out: TextIO) -> None:
        """The BYE the contact center received: shown, and its signature checked."""
        self.bye_headers = received_bye_headers(uac)
        for name, value in self.bye_headers:
            out.write(f"  {name}: {value}\n")
        secret = merchant.signing_secret.encode()
        self.result_signature_ok = verify_result_headers(self.bye_headers, secret, call_id)
        out.write(
            f"  signature (merchant signing secret, Call-ID): {_valid(self.result_signature_ok)}\n"
        )

    def read_callback(
        self, callback: ReceivedCallback, merchant: MerchantConfig, out: TextIO
    ) -> None:
        """The callback the merchant received: shown, and its signature checked."""
        self.callback_headers, self.callback_body = callback.headers, callback.body
        self.callback_signature_ok = verify_callback(
            merchant.callback_secret.encode(),
            callback.body,
            callback.headers.get("X-Payivr-Signature", ""),
        )
        out.write(f"  POST {callback.path}\n")
        for name in ("Content-Type", "X-Payivr-Event-Id", "X-Payivr-Signature"):
            out.write(f"  {name}: {callback.headers.get(name, '-')}\n")
        body = json.dumps(json.loads(callback.body), indent=1).replace("\n", "\n  ")
        out.write(f"  {body}\n")
        out.write(f"  signature (merchant callback secret): {_valid(self.callback_signature_ok)}\n")


def _valid(ok: bool) -> str:
    return "valid" if ok else "INVALID"


def pick_merchant(config: Config) -> MerchantConfig:
    """A merchant the demo can use: loopback CTI source, plain-HTTP loopback callbacks."""
    for merchant in config.merchants.values():
        if (
            merchant.source_allowed("127.0.0.1")
            and merchant.allow_http_callbacks
            and merchant.callback_host_allowed("127.0.0.1")
        ):
            return merchant
    raise DemoError(
        "no merchant in the config accepts 127.0.0.1 as CTI source with plain "
        "http callbacks to 127.0.0.1 (see config/payivr.example.yaml, acme)"
    )


def request_headers(
    merchant: MerchantConfig,
    call_id: str,
    callback_url: str,
    language: str | None,
    amount: int,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """A signed sale (SPEC 2 and 3), as a CTI would send it (`extra`: more request
    headers, e.g. X-Pay-Return, signed with the rest)."""
    from payivr.core.request import SIGNED_REQUEST_HEADERS
    from payivr.core.signature import sign

    fields = {
        "X-Pay-Merchant": merchant.id,
        "X-Pay-Operation": "sale",
        "X-Pay-Order": f"DEMO{secrets.randbelow(10**6):06d}",
        "X-Pay-Amount": str(amount),
        "X-Pay-Currency": merchant.default_currency,
        "X-Pay-Language": language or merchant.default_language,
        "X-Pay-Callback-Url": callback_url,
        "X-Pay-Timestamp": str(int(time.time())),
        **(extra or {}),
    }
    lowered = {k.lower(): v for k, v in fields.items()}
    signature = sign(merchant.signing_secret.encode(), lowered, call_id, SIGNED_REQUEST_HEADERS)
    return [*fields.items(), ("X-Pay-Signature", signature)]


def demo_expiry(today: date) -> str:
    """MMYY the demo caller gives: December, three years ahead."""
    return f"12{(today.year + 3) % 100:02d}"


def _keys(merchant: MerchantConfig, today: date, card: str = DEMO_CARD) -> str:
    """What the caller keys, one entry per line, in the plan's order."""
    lines = [card + "#", demo_expiry(today), DEMO_CVV]
    if merchant.capture.confirm_card:
        lines.append("1")
    return "\n".join(lines) + "\n"


def drive_session(
    config: Config, session_id: str, out: TextIO, card: str = DEMO_CARD
) -> tuple[PaymentRequest, PaymentResult]:
    """Run the capture plan for a stored session as `payivr simulate` does, with the
    session's states, events and result going through the Redis store."""
    from payivr.commands.simulate import Keypad, Simulator
    from payivr.core.plan import CapturePlan
    from payivr.core.prompts import load_prompts
    from payivr.execution.store import ThreadedStore
    from payivr.processors import build_processor
    from payivr.store.connect import redis_client
    from payivr.store.redis_store import RedisSessionStore

    store = RedisSessionStore(redis_client(config.services.redis), config.services.session_ttl_s)
    session = store.load(session_id)
    if session is None:
        raise DemoError(f"session {session_id} is not in Redis: Kamailio did not store it")
    request = session.request
    merchant = config.merchant(request.merchant)
    if merchant is None:
        raise DemoError(f"session {session_id} names merchant {request.merchant}, not configured")
    today = date.today()
    plan = CapturePlan(request, merchant, today)
    keypad = Keypad(io.StringIO(_keys(merchant, today, card)), out)
    # The executor writes the states, events and result (with its outbox entry) to Redis.
    simulator = Simulator(
        plan,
        request,
        load_prompts(request.language),
        keypad,
        out,
        merchant.processor.timeout_s,
        build_processor(merchant),
        session=session,
        store=ThreadedStore(store),
    )
    simulator.run()
    result = simulator.result
    if result is None:
        raise DemoError("the simulated call recorded no result")
    return request, result


def run_demo(
    config_path: Path,
    workdir: Path,
    *,
    out: TextIO,
    keep: bool = False,
    language: str | None = None,
    amount: int = 1250,
    freeswitch: bool = True,
    card: str = DEMO_CARD,
    input_mode: str = "dtmf",
) -> DemoReport:
    """The whole demo (module doc); stops the stack afterwards unless `keep`.

    `card` is a sandbox test card (SPEC 8) for the other outcomes, e.g. a decline.
    `input_mode` "speech": the request asks for spoken card data (`X-Pay-Input`) and,
    with FreeSWITCH, the caller says the card (payivr.stack.demo_freeswitch)."""
    from payivr.core.config import load_config

    fs_binary = find_freeswitch() if freeswitch else None
    if fs_binary:
        from payivr.stack.demo_freeswitch import run_freeswitch_demo

        return run_freeswitch_demo(
            config_path,
            workdir,
            fs_binary,
            out=out,
            keep=keep,
            language=language,
            amount=amount,
            card=card,
            input_mode=input_mode,
        )
    report = DemoReport(workdir=str(workdir))
    merchant = pick_merchant(load_config(config_path))
    receiver = CallbackReceiver().start()
    sipp_dir = workdir / "sipp"
    holder: dict[str, Sipp] = {}

    def start_standin(layout: StackLayout) -> None:
        holder["uas"] = standin_freeswitch(layout.ports["freeswitch"], sipp_dir).start()

    step = _stepper(out)
    try:
        step("starting the local stack (Redis, Kamailio, ESL application, callback worker)")
        state = stack_up(config_path, workdir, freeswitch=False, before_kamailio=start_standin)
        report.missing = [m for m in state.missing if not m.startswith("freeswitch:")]
        report.missing[:0] = [
            "FreeSWITCH: not found, so no RTP, no prompt audio, no RFC 2833 DTMF capture, "
            "no recording masking, and the ESL application took no call; the capture plan "
            "ran in this process as `payivr simulate` runs it. " + FREESWITCH_HINT,
        ]
        if input_mode == "speech":
            report.missing.insert(1, NO_SPEECH_WITHOUT_FREESWITCH)
        config = load_config(state.config)
        merchant = config.merchant(merchant.id) or merchant
        uas = holder["uas"]
        out.write(
            f"  Kamailio udp/tcp 127.0.0.1:{state.ports['kamailio']}, Redis "
            f"127.0.0.1:{state.ports['redis']}, stand-in FreeSWITCH (SIPp UAS) "
            f"127.0.0.1:{state.ports['freeswitch']}, callback receiver {receiver.url}\n"
        )

        call_id = f"payivr-demo-{secrets.token_hex(8)}@127.0.0.1"
        extra = {"X-Pay-Input": input_mode} if input_mode != "dtmf" else None
        headers = request_headers(merchant, call_id, receiver.url, language, amount, extra)
        step("contact center (SIPp UAC) sends a signed payment INVITE to Kamailio")
        for name, value in headers:
            out.write(f"  {name}: {value}\n")
        injection = write_injection(sipp_dir / "request.csv", [f"{n}: {v}" for n, v in headers])
        uac = contact_center(
            state.ports["kamailio"], free_port(), call_id, injection, sipp_dir
        ).start()
        holder["uac"] = uac
        found = wait_for_session(uas, 15)
        if found is None:
            raise DemoError(
                "Kamailio did not relay the call to the stand-in FreeSWITCH\n"
                + uac.explain()
                + "\n"
                + uas.explain()
            )
        report.session_id, report.call_id = found
        step(
            f"Kamailio admitted it: session {report.session_id} in Redis, call relayed "
            "with X-Payivr-Session"
        )

        step(
            f"the capture plan (as `payivr simulate` drives it), sandbox card {'*' * 12}{card[-4:]}"
        )
        _request, result = drive_session(config, report.session_id, out, card)
        report.result = str(result.code)

        step("the IVR ends the call: BYE with the signed result headers, via Kamailio")
        from payivr.core.result import result_headers

        bye = result_headers(
            result,
            merchant.signing_secret.encode(),
            call_id,
            int(time.time()),
        )
        send_result_info(state.ports["freeswitch"], call_id, bye)
        if uac.wait(20) != 0:
            raise DemoError("the contact center did not get the BYE\n" + uac.explain())
        report.read_bye(uac, merchant, call_id, out)

        step("the callback worker delivers the signed callback")
        callbacks = receiver.wait(1, 20)
        if not callbacks:
            raise DemoError(
                f"no callback arrived within 20 s; worker log: {workdir / 'logs' / 'callbacks.log'}"
            )
        report.read_callback(callbacks[0], merchant, out)
    finally:
        for proc in holder.values():
            proc.stop()
        receiver.stop()
        if not keep:
            stack_down(workdir)
    step("what this demo did not run")
    for item in report.missing:
        out.write(f"  - {item}\n")
    if keep:
        out.write(f"  (stack left running: payivr stack down --workdir {workdir})\n")
    return report


def _stepper(out: TextIO) -> Callable[[str], None]:
    counter = iter(range(1, 100))

    def step(text: str) -> None:
        out.write(f"\n[{next(counter)}] {text}\n")
        out.flush()

    return step
