"""A caller pays by voice through Kamailio and a real FreeSWITCH (docs/dictation.md).

The contact center's SIPp UAC sends a signed sale with `X-Pay-Input: speech` to
Kamailio, which relays it to FreeSWITCH; the ESL application listens over
FreeSWITCH's `unicast` stream with pocketsphinx. The caller is SIPp playing a pcap
generated here from the speech corpus (tests/fixtures/speech/make_corpus.py, the
flite voice rms): the four chunks of the card number, the expiry, the security code
and a "yes" after each read-back, as G.711 A-law, each answer timed against the
prompts before it (payivr.stack.spoken_caller). Skipped without FreeSWITCH
(FREESWITCH_BIN or PATH).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from payivr.core.config import Config, load_config
from payivr.core.result import SIGNED_RESULT_HEADERS
from payivr.core.signature import verify, verify_callback
from payivr.stack.demo_freeswitch import start_spoken_call
from payivr.stack.receiver import CallbackReceiver
from payivr.stack.sipp import received_bye_headers
from payivr.stack.spoken_caller import SaidCard
from payivr.stack.up import StackState
from tests.conftest import EXAMPLE_CONFIG
from tests.fixtures.speech.make_corpus import CARDS, chunks
from tests.freeswitch.engine_marks import FREESWITCH, NEEDS_FREESWITCH
from tests.freeswitch.inbound import CallWatcher
from tests.freeswitch.test_freeswitch_calls import _zero_runs_s, files_containing
from tests.speech.corpus import english, first

pytestmark = NEEDS_FREESWITCH
VOICE = "flite-rms-95"  # the corpus voice pocketsphinx gets right (bench/dictation.py)
PAN, EXPIRY, CVV = CARDS[0]  # 4111111111111111, 1228, 123
MERCHANT = "acme-rec"  # acme, recording the IVR leg


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackState, Path]]:
    from payivr.stack.up import stack_down, stack_up

    root = tmp_path_factory.mktemp("fs-speech")
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["secrets_file"] = str((EXAMPLE_CONFIG.parent / data["secrets_file"]).resolve())
    data["services"]["esl"]["prompts_dir"] = str(
        (EXAMPLE_CONFIG.parent / data["services"]["esl"]["prompts_dir"]).resolve()
    )
    data["merchants"][MERCHANT] = {**data["merchants"]["acme"], "record_ivr_leg": True}
    config = root / "payivr.yaml"
    config.write_text(yaml.safe_dump(data))
    state = stack_up(config, root / "stack", freeswitch=FREESWITCH)
    try:
        yield state, root / "stack"
    finally:
        stack_down(root / "stack")


def said_card() -> SaidCard:
    root, items = english()

    def audio(**match: object) -> bytes:
        return first(items, voice=VOICE, **match).audio(root)

    parts = chunks(PAN)
    return SaidCard(
        chunks=[audio(kind="chunk", card=0, chunk=n) for n in range(len(parts))],
        chunk_digits=[len(p) for p in parts],
        expiry=audio(kind="expiry", card=0),
        cvv=audio(kind="cvv", card=0),
        cvv_digits=len(CVV),
        yes=audio(kind="yesno", digits="1"),
    )


def verdicts(state: StackState, session: str | None = None) -> list[dict[str, str]]:
    """The field.completed events (verdicts, never digits) of `session` or of all."""
    import redis

    client = redis.Redis(port=state.ports["redis"], decode_responses=True)
    try:
        return [
            f
            for _, f in client.xrange("payivr:events")
            if f.get("event") == "field.completed" and session in (None, f.get("session"))
        ]
    finally:
        client.close()


def _needles() -> list[str]:
    # The PAN and its prefixes down to 8 digits, the expiry with the code, and the
    # digit words a transcript would hold.
    return [PAN[:n] for n in range(16, 7, -1)] + [EXPIRY + CVV, "four one one one", "one, one"]


@pytest.mark.timeout(300)
def test_a_caller_says_the_card_through_kamailio_and_freeswitch_and_is_approved(
    stack: tuple[StackState, Path],
) -> None:
    state, workdir = stack
    config: Config = load_config(Path(state.config))
    merchant = config.merchant(MERCHANT)
    assert merchant is not None
    es = config.services.esl.event_socket
    password = es.password.value() if es.password is not None else "ClueCon"
    receiver = CallbackReceiver().start()
    said = said_card()
    started = time.monotonic()
    try:
        with CallWatcher(es.port, password) as watcher:
            call = start_spoken_call(
                state.ports["kamailio"],
                config,
                merchant,
                workdir / f"sipp-{secrets.token_hex(4)}",
                said,
                callback_url=receiver.url,
            )
            rc = call.uac.wait(250)
            call.uac.stop()
            # On failure: the applications FreeSWITCH ran and the fields' verdicts say
            # how far the call got.
            ran = [
                str(e.get("Application"))
                for e in watcher.watch.events
                if e.get("Event-Name") == "CHANNEL_EXECUTE"
            ]
            assert rc == 0, " ".join(ran) + " | " + json.dumps(verdicts(state))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE" for e in watcher.watch.events
            ):
                time.sleep(0.1)
        print(f"spoken call: {time.monotonic() - started:.1f} s")
        callbacks = receiver.wait(1, 20)
    finally:
        receiver.stop()

    # The result, as for a keyed payment: signed BYE headers via Kamailio, one
    # signed callback saying the same.
    bye = {k.lower(): v for k, v in received_bye_headers(call.uac)}
    assert bye.get("x-pay-result") == "approved", bye
    assert bye["x-pay-card"] == "************1111"  # all 16 digits said and confirmed
    assert bye.get("x-pay-auth-code")
    assert verify(
        merchant.signing_secret.encode(),
        {k: v for k, v in bye.items() if k in SIGNED_RESULT_HEADERS},
        call.call_id,
        bye["x-pay-signature"],
        SIGNED_RESULT_HEADERS,
    )
    assert callbacks and verify_callback(
        merchant.callback_secret.encode(),
        callbacks[0].body,
        callbacks[0].headers.get("X-Payivr-Signature", ""),
    )
    body = json.loads(callbacks[0].body)
    assert (body["result"], body["session_id"]) == ("approved", bye["x-pay-session"])
    assert body.get("auth_code") == bye["x-pay-auth-code"]

    # Every field said, none keyed: no keypad application, no DTMF, the prompts
    # after the first listen sent through the unicast stream (no playback until the
    # auth code's `say` ended it).
    events = watcher.watch.events
    apps = [e.get("Application") for e in events if e.get("Event-Name") == "CHANNEL_EXECUTE"]
    assert "play_and_get_digits" not in apps, apps
    assert not any(e.get("Event-Name") == "DTMF" for e in events)
    playbacks = [
        Path(e.get("Application-Data", "")).stem
        for e in events
        if e.get("Event-Name") == "CHANNEL_EXECUTE" and e.get("Application") == "playback"
    ]
    assert playbacks[:2] == ["greeting", "amount-intro"], playbacks
    assert not {"say-card-number", "readback-intro", "say-cvv", "processing"} & set(playbacks)
    completed = verdicts(state, bye["x-pay-session"])
    assert [(f["field"], f["valid"]) for f in completed] == [
        ("card_number", "true"),
        ("expiry", "true"),
        ("cvv", "true"),
    ], completed

    # The recording of the IVR leg is exact zeros over everything the caller said.
    recording = workdir / "recordings" / f"{bye['x-pay-session']}.wav"
    deadline = time.monotonic() + 5
    while not recording.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    zero_s, total_s = _zero_runs_s(recording)
    spoken_s = call.sayings[-1].start_s + call.sayings[-1].seconds - call.sayings[0].start_s
    assert zero_s >= spoken_s and total_s > zero_s + 5, (zero_s, spoken_s, total_s)

    # No card digit and no transcript anywhere: FreeSWITCH's log and console,
    # Kamailio's, the ESL application's (its stderr too: an unsilenced recogniser
    # prints what it heard there), the worker's, SIPp's traces, Redis' AOF, FreeSWITCH's
    # events and channel dumps, the callback (the caller's pcap excluded).
    seen = json.dumps([events, watcher.watch.dumps]) + callbacks[0].body.decode()
    for needle in _needles():
        assert files_containing(workdir, needle.encode()) == [], needle
        assert needle not in seen, needle


@pytest.mark.timeout(360)
def test_the_demo_with_speech_input_is_a_voice_payment(tmp_path: Path) -> None:
    """`payivr demo --input speech` with FreeSWITCH: its own stack, flite's voice
    saying the sandbox card (payivr.stack.caller_voice), the signed result on the BYE
    and in the callback."""
    import io

    from payivr.stack.demo import run_demo

    out = io.StringIO()
    started = time.monotonic()
    report = run_demo(EXAMPLE_CONFIG, tmp_path, out=out, input_mode="speech")
    print(f"payivr demo --input speech: {time.monotonic() - started:.1f} s")
    text = out.getvalue()
    assert report.ok and report.result == "approved", text
    bye = dict(report.bye_headers)
    assert bye["X-Pay-Card"] == "************1111"
    assert "X-Pay-Input: speech" in text and "flite (rms) says" in text
    assert "FreeSWITCH: not found" not in text
    for needle in [PAN[:12], "four, one, one, one"]:
        assert needle not in text
        assert files_containing(tmp_path, needle.encode()) == [], needle
