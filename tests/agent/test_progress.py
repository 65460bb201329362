"""The pure progress model: plan commands and verdicts in, digit-free progress out."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from payivr.core.config import MerchantConfig, parse_config
from payivr.core.plan import CapturePlan, DigitsEntered, Field, ProcessorAnswered
from payivr.core.processor import ProcessorAnswer, ResultCode
from payivr.core.progress import FieldStatus, Kind, ProgressEvent, ProgressTracker
from payivr.core.request import PaymentRequest
from payivr.core.result import Outcome, build_result
from payivr.core.secrets import SecretDigits
from tests.agent.harness import EXAMPLE
from tests.support.builders import payment_request

PAN = "4111111111111111"


def merchant() -> MerchantConfig:
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text())
    config = parse_config(data, base_dir=EXAMPLE.parent, environ={})
    return config.merchants["acme"]


def request() -> PaymentRequest:
    return payment_request(order="P1", call_id="c1")


def keyed(tracker: ProgressTracker, keys: str) -> list[ProgressEvent]:
    out = []
    for key in keys:
        event = tracker.key_pressed(key.isdigit())
        if event is not None:
            out.append(event)
    return out


def test_a_payment_seen_by_the_agent_has_counts_verdicts_and_no_digits() -> None:
    plan = CapturePlan(request(), merchant(), datetime.date(2026, 11, 21))
    tracker = ProgressTracker("pay1")
    events = [tracker.started("sale", 1250, "EUR")]
    events += tracker.commands(plan.start())
    assert events[-1].status is FieldStatus.WAITING and events[-1].field is Field.CARD_NUMBER

    # Too short first: invalid with the reason, then asked again (attempt 2).
    events += keyed(tracker, "41111#")
    assert [e.digit_count for e in events if e.status is FieldStatus.ENTERING] == [1, 2, 3, 4, 5]
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits("41111"), "#"))
    events += tracker.report(plan.last_field)
    invalid = events[-1]
    assert invalid.status is FieldStatus.INVALID and invalid.reason == "too-short"
    events += tracker.commands(commands)
    assert events[-1].attempt == 2

    events += keyed(tracker, PAN + "#")
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(PAN), "#"))
    events += tracker.report(plan.last_field)
    valid = events[-1]
    assert (valid.status, valid.brand, valid.digit_count) == (FieldStatus.VALID, "visa", 16)
    events += tracker.commands(commands)

    commands = plan.handle(DigitsEntered(Field.EXPIRY, SecretDigits("1230")))
    events += tracker.report(plan.last_field) + tracker.commands(commands)
    cvv_prompt = events[-1]
    assert cvv_prompt.field is Field.CVV
    commands = plan.handle(DigitsEntered(Field.CVV, SecretDigits("123")))
    events += tracker.report(plan.last_field) + tracker.commands(commands)
    assert events[-1].kind is Kind.PROCESSING
    # Keys after the field closed do not count anywhere.
    assert tracker.key_pressed(True) is None

    finish = ProgressTracker.outcome_of(
        plan.handle(ProcessorAnswered(ProcessorAnswer(ResultCode.APPROVED, auth_code="654321")))
    )
    assert finish is not None and finish.outcome.code is ResultCode.APPROVED
    now = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
    result = build_result(
        request(),
        session_id="pay1",
        event_id="e1",
        created_at=now,
        completed_at=now,
        outcome=finish.outcome,
    )
    events.append(tracker.finished(result))
    assert events[-1].result is not None and events[-1].result["card"] == {
        "brand": "visa",
        "last4": "1111",
    }

    text = json.dumps([e.to_dict() for e in events])
    assert PAN not in text and PAN[:6] not in text and "1230" not in text
    assert {e.to_dict()["type"] for e in events} == {
        "payment.started",
        "field",
        "payment.processing",
        "payment.result",
    }


def test_restart_and_cancelled_result() -> None:
    tracker = ProgressTracker("pay2")
    plan = CapturePlan(request(), merchant(), datetime.date(2026, 11, 21))
    tracker.commands(plan.start())
    keyed(tracker, "41")
    commands = plan.handle(DigitsEntered(Field.CARD_NUMBER, SecretDigits(""), "*"))
    (restarted,) = tracker.report(plan.last_field)
    assert restarted.status is FieldStatus.RESTARTED
    (again,) = tracker.commands(commands)
    assert (again.status, again.attempt, again.digit_count) == (FieldStatus.WAITING, 2, 0)
    assert tracker.key_pressed(True) is not None
    assert tracker.key_pressed(False) is None  # "*" or "#" is not a digit
    outcome = Outcome.cancelled("cancelled-by-agent")
    now = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
    result = build_result(
        request(),
        session_id="pay2",
        event_id="e2",
        created_at=now,
        completed_at=now,
        outcome=outcome,
    )
    final = tracker.finished(result).to_dict()
    assert final["reason"] == "cancelled-by-agent"
    assert final["result"]["result"] == "cancelled"  # type: ignore[index]


def test_live_digit_count_and_the_drop_dtmf_arguments(tmp_path: Path) -> None:
    import dataclasses

    from payivr.agent.settings import load_agent_settings
    from tests.agent.harness import make_config

    config = make_config(tmp_path, "redis://127.0.0.1:1/0")
    settings, tokens = load_agent_settings(config, {})
    assert not settings.live_digit_count and len(tokens) == 2
    assert settings.drop_dtmf_args() == "on mask_digits 0"
    raw = dict(config.raw)
    live = {**raw["services"]["agent_api"], "live_digit_count": True}  # type: ignore[index]
    raw["services"] = {**raw["services"], "agent_api": live}  # type: ignore[dict-item]
    on, _ = load_agent_settings(dataclasses.replace(config, raw=raw), {})
    assert on.live_digit_count
    # sensitive_dtmf stays on whatever live_digit_count says: FreeSWITCH logs no key
    # at any level, so its log level no longer matters here.
    raw["services"] = {**raw["services"], "freeswitch": {"log_level": "info"}}  # type: ignore[dict-item]
    assert load_agent_settings(dataclasses.replace(config, raw=raw), {})[0].live_digit_count
    agent = {**raw["services"]["agent_api"], "live_digit_count": False, "dtmf_mask": "silence"}  # type: ignore[index]
    raw["services"] = {**raw["services"], "agent_api": agent}  # type: ignore[dict-item]
    quiet, _ = load_agent_settings(dataclasses.replace(config, raw=raw), {})
    # Four arguments, as FreeSWITCH 1.10 requires; "-" is no DTMF key: nothing is sent.
    assert quiet.drop_dtmf_args() == "on mask_digits -" and not quiet.live_digit_count
    assert quiet.drop_dtmf_off_args() == "off mask_digits -"
