"""`payivr demo` with a real FreeSWITCH (FREESWITCH_BIN or `freeswitch` on PATH).

The whole product path: the contact center's SIPp UAC sends the signed INVITE to
Kamailio, which relays it to FreeSWITCH; FreeSWITCH's payivr dialplan hands the call
to the ESL application, which plays the prompts and collects the card. The UAC keys
the sandbox card as RFC 2833 events from a generated pcap (increasing timestamps, so
the repeated digits of 4111... survive) at times estimated from the prompts' lengths,
then waits for the IVR's BYE with the signed result headers; the callback worker
delivers the signed callback to a local receiver. With `--input speech` the caller
says the card instead (flite's voice, payivr.stack.caller_voice) in a PCMU pcap whose
answers are timed against the prompts (payivr.stack.spoken_caller).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from payivr.stack.ports import free_port
from payivr.stack.receiver import CallbackReceiver
from payivr.stack.rtp_pcap import PCMA_PT, PCMU_PT, Keying, Saying, keyed_call, spoken_call
from payivr.stack.sipp import Sipp, contact_center, scenario, write_injection
from payivr.stack.spoken_caller import SaidCard, schedule, wav_seconds

if TYPE_CHECKING:
    from payivr.core.config import Config, MerchantConfig
    from payivr.stack.demo import DemoReport

# Allowances around the prompts, in seconds: answer and socket set-up; the amount and
# currency said by mod_say; how far into a field's prompt the caller starts keying.
ANSWER_S = 1.5
SAY_AMOUNT_S = 3.5
INTO_PROMPT_S = 1.5
BETWEEN_FIELDS_S = 1.0
SPOKEN_LANGUAGE = "en"  # the demo caller's voice (flite) and pocketsphinx's model


def prompt_seconds(prompts_dir: Path, language: str, prompt_id: str) -> float:
    """Length of a built prompt (0 if it is missing)."""
    return wav_seconds(prompts_dir / language / f"{prompt_id}.wav")


def caller_keying(
    prompts_dir: Path, language: str, merchant: MerchantConfig, pan: str, cvv: str, today: date
) -> list[Keying]:
    """When the caller keys what: card, expiry, CVV (and 1 to confirm, if asked)."""
    from payivr.stack.demo import demo_expiry

    def length(prompt_id: str) -> float:
        return prompt_seconds(prompts_dir, language, prompt_id)

    start = ANSWER_S + length("greeting") + length("amount-intro") + SAY_AMOUNT_S + INTO_PROMPT_S
    keyings = [Keying(start, pan + "#")]
    t = start + len(pan + "#") * 0.3 + BETWEEN_FIELDS_S + INTO_PROMPT_S
    keyings.append(Keying(t, demo_expiry(today)))
    t += 4 * 0.3 + BETWEEN_FIELDS_S + INTO_PROMPT_S
    keyings.append(Keying(t, cvv))
    if merchant.capture.confirm_card:
        t += (
            len(cvv) * 0.3
            + BETWEEN_FIELDS_S
            + length("confirm-card-ending")
            + 3.0
            + length("confirm-choice")
        )
        keyings.append(Keying(t, "1"))
    return keyings


@dataclass
class KeyedCall:
    """A payment call placed by the contact center's UAC, the caller keying a card."""

    call_id: str
    headers: list[tuple[str, str]]
    keyings: list[Keying]
    uac: Sipp


def start_keyed_call(
    kamailio_port: int,
    config: Config,
    merchant: MerchantConfig,
    sipp_dir: Path,
    *,
    card: str,
    callback_url: str,
    language: str | None = None,
    amount: int = 1250,
    extra_headers: Mapping[str, str] | None = None,
    scenario_file: Path | None = None,
    timeout_s: int = 120,
    inband_dtmf: bool = False,
) -> KeyedCall:
    """Start the UAC of a signed payment call to Kamailio whose caller keys `card`
    (then the expiry and CVV) as RFC 2833 events at times estimated from the prompts
    (with `inband_dtmf`, also as tones in the audio, as some phones do).

    The scenario (the demo's by default) must carry the `@PCAP@` placeholder; the
    caller is `call.uac`
    (wait for it, then read its trace with `received_bye_headers`).
    """
    from payivr.stack.demo import DEMO_CVV

    lang = language or merchant.default_language
    keyings = caller_keying(
        config.services.esl.prompts_dir, lang, merchant, card, DEMO_CVV, date.today()
    )
    sipp_dir.mkdir(parents=True, exist_ok=True)
    pcap = keyed_call(sipp_dir / "caller.pcap", keyings, inband=inband_dtmf)
    call_id, headers, uac = _place_call(
        kamailio_port,
        merchant,
        sipp_dir,
        pcap,
        callback_url=callback_url,
        language=lang,
        amount=amount,
        extra_headers=extra_headers,
        scenario_file=scenario_file,
        timeout_s=timeout_s,
    )
    return KeyedCall(call_id, headers, keyings, uac)


@dataclass
class SpokenCall:
    """A payment call placed by the contact center's UAC, the caller saying the card."""

    call_id: str
    headers: list[tuple[str, str]]
    sayings: list[Saying]
    uac: Sipp


def start_spoken_call(
    kamailio_port: int,
    config: Config,
    merchant: MerchantConfig,
    sipp_dir: Path,
    said: SaidCard,
    *,
    callback_url: str,
    language: str | None = None,
    amount: int = 1250,
    timeout_s: int = 240,
) -> SpokenCall:
    """Start the UAC of a signed payment call with `X-Pay-Input: speech` whose caller
    says `said` (payivr.stack.spoken_caller) in a PCMU pcap, each answer timed
    against the prompts the IVR plays before it."""
    lang = language or merchant.default_language
    prompts_dir = config.services.esl.prompts_dir
    first_prompt = ANSWER_S + prompt_seconds(prompts_dir, lang, "greeting")
    first_prompt += prompt_seconds(prompts_dir, lang, "amount-intro") + SAY_AMOUNT_S
    sayings = schedule(prompts_dir, lang, said, first_prompt)
    sipp_dir.mkdir(parents=True, exist_ok=True)
    pcap = spoken_call(sipp_dir / "caller.pcap", sayings)
    call_id, headers, uac = _place_call(
        kamailio_port,
        merchant,
        sipp_dir,
        pcap,
        callback_url=callback_url,
        language=lang,
        amount=amount,
        extra_headers={"X-Pay-Input": "speech"},
        scenario_file=None,
        timeout_s=timeout_s,
        codec=(PCMU_PT, "PCMU"),
    )
    return SpokenCall(call_id, headers, sayings, uac)


def _place_call(
    kamailio_port: int,
    merchant: MerchantConfig,
    sipp_dir: Path,
    pcap: Path,
    *,
    callback_url: str,
    language: str,
    amount: int,
    extra_headers: Mapping[str, str] | None,
    scenario_file: Path | None,
    timeout_s: int,
    codec: tuple[int, str] = (PCMA_PT, "PCMA"),
) -> tuple[str, list[tuple[str, str]], Sipp]:
    """The contact center's UAC, started: a signed sale INVITE to Kamailio offering
    `codec` (the scenario's `@PT@`, `@CODEC@`), then the caller's pcap (`@PCAP@`),
    then the IVR's BYE awaited."""
    from payivr.stack.demo import request_headers

    source = scenario_file or scenario("uac-keyed-sale-expect-result-on-bye")
    uac_scenario = sipp_dir / source.name
    text = source.read_text().replace("@PCAP@", str(pcap))
    uac_scenario.write_text(text.replace("@PT@", str(codec[0])).replace("@CODEC@", codec[1]))
    call_id = f"payivr-demo-{secrets.token_hex(8)}@127.0.0.1"
    headers = request_headers(merchant, call_id, callback_url, language, amount, extra_headers)
    injection = write_injection(sipp_dir / "request.csv", [f"{n}: {v}" for n, v in headers])
    uac = contact_center(
        kamailio_port, free_port(), call_id, injection, sipp_dir, timeout_s, uac_scenario
    )
    uac.start()
    return call_id, headers, uac


def run_freeswitch_demo(
    config_path: Path,
    workdir: Path,
    binary: str,
    *,
    out: TextIO,
    keep: bool,
    language: str | None,
    amount: int,
    card: str,
    input_mode: str = "dtmf",
) -> DemoReport:
    """The demo through FreeSWITCH and the ESL application (see module doc)."""
    from payivr.core.config import load_config
    from payivr.stack.caller_voice import VoiceUnavailable, said_card
    from payivr.stack.demo import (
        DEMO_CVV,
        DemoError,
        DemoReport,
        _stepper,
        demo_expiry,
        pick_merchant,
    )
    from payivr.stack.up import stack_down, stack_up

    report = DemoReport(workdir=str(workdir))
    step = _stepper(out)
    merchant = pick_merchant(load_config(config_path))
    receiver = CallbackReceiver().start()
    sipp_dir = workdir / "sipp"
    uac: Sipp | None = None
    try:
        step(f"starting the local stack with FreeSWITCH ({binary})")
        state = stack_up(config_path, workdir, freeswitch=binary)
        report.missing = list(state.missing)
        config = load_config(state.config)
        merchant = config.merchant(merchant.id) or merchant
        if input_mode == "speech":
            lang = language or merchant.default_language
            if lang != SPOKEN_LANGUAGE:
                raise DemoError(
                    f"--input speech: the demo caller speaks English (flite); {lang} "
                    "needs an operator's Vosk model and a voice (docs/dictation.md)"
                )
            step(
                "the caller's voice: flite (rms) says the sandbox card "
                f"{'*' * 12}{card[-4:]}, the expiry, the code and a yes"
            )
            try:
                said = said_card(card, demo_expiry(date.today()), DEMO_CVV)
            except VoiceUnavailable as exc:
                raise DemoError(f"--input speech: {exc}") from None
            step(
                "contact center (SIPp UAC) calls Kamailio with X-Pay-Input: speech; the "
                "caller says the card, four digits at a time, and confirms each read-back"
            )
            call: KeyedCall | SpokenCall = start_spoken_call(
                state.ports["kamailio"],
                config,
                merchant,
                sipp_dir,
                said,
                callback_url=receiver.url,
                language=lang,
                amount=amount,
            )
        else:
            step(
                "contact center (SIPp UAC) calls Kamailio; the caller keys the sandbox card "
                f"{'*' * 12}{card[-4:]} as RFC 2833 DTMF"
            )
            call = start_keyed_call(
                state.ports["kamailio"],
                config,
                merchant,
                sipp_dir,
                card=card,
                callback_url=receiver.url,
                language=language,
                amount=amount,
            )
        uac, call_id = call.uac, call.call_id
        for name, value in call.headers:
            out.write(f"  {name}: {value}\n")
        rc = uac.wait(250 if input_mode == "speech" else 130)
        if rc != 0:
            raise DemoError(
                f"the call did not end with the IVR's BYE (sipp exit {rc}); "
                f"FreeSWITCH log: {workdir / 'logs' / 'freeswitch.log'}, ESL log: "
                f"{workdir / 'logs' / 'esl.log'}\n" + uac.explain()
            )
        step("the IVR's BYE reached the contact center through Kamailio")
        report.read_bye(uac, merchant, call_id, out)
        got = {k.lower(): v for k, v in report.bye_headers}
        report.result = got.get("x-pay-result", "")
        report.session_id = got.get("x-pay-session", "")
        report.call_id = call_id

        step("the callback worker delivers the signed callback")
        callbacks = receiver.wait(1, 30)
        if callbacks:
            report.read_callback(callbacks[0], merchant, out)
        else:
            out.write("  no callback within 30 s\n")
    finally:
        if uac is not None:
            uac.stop()
        receiver.stop()
        if not keep:
            stack_down(workdir)
    if report.missing:
        step("what this demo did not run")
        for item in report.missing:
            out.write(f"  - {item}\n")
    return report
