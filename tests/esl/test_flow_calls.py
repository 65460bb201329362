"""The reference flow (flows/zendesk-caller-aware.yaml) on the ESL application: the
fake FreeSWITCH, a real Redis, the Zendesk-shaped server on loopback.

Each path is checked with the commands FreeSWITCH receives (in order), the requests
Zendesk receives (method, path, query, auth), the flow events, and the after-call
comment: queued once in the durable outbox, then delivered once by the comment
worker.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from payivr.callbacks.outbox_worker import WorkerSettings
from payivr.connectors.client import ConnectorClient
from payivr.connectors.comments import CommentOutbox, CommentWorker
from tests.esl.flow_harness import CALLER, FlowStack, flow_config
from tests.esl.peer import FakeCall, HangUp, Keys, Silence
from tests.support.fake_zendesk import FakeZendesk

FLOW = "zendesk-caller-aware"


@pytest.fixture()
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.add_user(501, "Ana García", "+34 600 111 222", locale="es-ES")
    fake.add_ticket(9001, 501, "solved", "2026-12-02T10:00:00Z")
    fake.add_ticket(8123, 501, "pending", "2026-12-01T10:00:00Z")
    fake.add_ticket(7000, 501, "open", "2026-11-01T10:00:00Z")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def prompt(prompts: Path, lang: str, name: str) -> str:
    return str(prompts / lang / "flows" / FLOW / f"{name}.wav")


def run(redis_url: str, zendesk: FakeZendesk, tmp_path: Path, scenario, **entry):  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with FlowStack(redis_url, flow_config(zendesk, **entry), tmp_path) as stack:
            await scenario(stack)

    asyncio.run(main())


def deliver_comments(redis_url: str, zendesk: FakeZendesk, config_zendesk: FakeZendesk) -> None:
    """Run the comment worker until the outbox is empty (a few seconds at most)."""
    settings = WorkerSettings(consumer="t", threads=1, retry_for_s=5.0, backoff_base_s=0.1,
                              backoff_max_s=0.2, lease_s=5.0)  # fmt: skip
    outbox = CommentOutbox(redis.Redis.from_url(redis_url))
    config = flow_config(config_zendesk)
    worker = CommentWorker(outbox, ConnectorClient(config.connectors), settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if sum(len(c) for c in zendesk.comments.values()):
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
        thread.join(10)


def assert_clean(stack: FlowStack, call: FakeCall) -> None:
    assert call.errors == [] and call.leaks == []
    assert not [line for line in stack.h.log.lines if line.startswith(("ERROR", "CRITICAL"))]
    assert not any("Traceback" in line for line in stack.h.log.lines)


def lookups(zendesk: FakeZendesk) -> list[tuple[str, str, dict[str, str]]]:
    return [(r.method, r.path, r.query) for r in zendesk.recorded("GET")]


def test_known_caller_hears_status_presses_1_and_waits_for_an_agent(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Keys("1")])
        assert_clean(stack, call)
        assert call.played == [
            ("playback", prompt(tmp_path, "en", "welcome")),
            ("playback", prompt(tmp_path, "es", "ticket-status")),
            ("say", "es NUMBER ITERATED 8123"),
            ("playback", prompt(tmp_path, "es", "status-pending")),
            ("play_and_get_digits", prompt(tmp_path, "es", "menu")),
            ("playback", prompt(tmp_path, "es", "queue-welcome")),
            ("fifo", "support in"),
        ]
        assert call.variables["fifo_music"] == str(tmp_path / "music" / "moh.wav")
        assert call.variables["fifo_orbit_exten"] == "_continue_:600"
        assert call.variables["fifo_chime_list"] == prompt(tmp_path, "es", "still-waiting")
        assert call.variables["fifo_chime_freq"] == "45"
        assert lookups(zendesk) == [
            ("GET", "/api/v2/users/search.json", {"query": "phone:34600111222"}),
            ("GET", "/api/v2/users/501/tickets/requested.json",
             {"sort_by": "updated_at", "sort_order": "desc"}),
        ]  # fmt: skip
        assert {r.authorization for r in zendesk.recorded()} == {zendesk.expected_authorization}
        names = [e["event"] for e in stack.events()]
        assert names[0] == "flow.started" and names[-1] == "flow.ended"
        assert names.index("queue.entered") < names.index("queue.answered")
        comments = stack.comments()
        assert len(comments) == 1
        assert comments[0]["ticket_id"] == "8123" and comments[0]["connector"] == "zendesk"
        assert comments[0]["body"].startswith(
            "payivr call to entry support: menu choice 1; queue answered after "
        )
        assert CALLER not in json.dumps(stack.events())

    run(redis_url, zendesk, tmp_path, scenario)
    deliver_comments(redis_url, zendesk, zendesk)
    assert [len(v) for v in zendesk.comments.values()] == [1]
    (put,) = zendesk.recorded("PUT")
    assert put.path == "/api/v2/tickets/8123.json"
    assert put.body["ticket"]["comment"]["public"] is False


def test_known_caller_presses_2_is_disconnected_and_the_ticket_gets_a_comment(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Keys("2")])
        assert_clean(stack, call)
        assert call.played[-2:] == [
            ("play_and_get_digits", prompt(tmp_path, "es", "menu")),
            ("playback", prompt(tmp_path, "es", "goodbye")),
        ]
        assert call.hungup and call.bye_headers == {}
        (comment,) = stack.comments()
        assert "menu choice 2; queue not-queued after 0 s; call ended by flow." in comment["body"]

    run(redis_url, zendesk, tmp_path, scenario)


@pytest.mark.parametrize("case", ["unknown-caller", "no-open-ticket", "down", "slow"])
def test_fallbacks_reach_the_menu_and_the_queue_never_silence(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path, case: str
) -> None:
    ani = CALLER
    if case == "unknown-caller":
        ani = "+44 20 7946 0000"
    elif case == "no-open-ticket":
        for ticket in zendesk.tickets.values():
            ticket["status"] = "closed"
    elif case == "down":
        zendesk.down_status = 503
    else:
        zendesk.delay_s = 3.0  # past the connector's overall timeout (2 s)

    # A known caller with no open ticket is answered in their language from then on.
    lang = "es" if case == "no-open-ticket" else "en"

    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Keys("1")], ani=ani)
        assert_clean(stack, call)
        assert call.played == [
            ("playback", prompt(tmp_path, "en", "welcome")),
            ("play_and_get_digits", prompt(tmp_path, lang, "menu")),
            ("playback", prompt(tmp_path, lang, "queue-welcome")),
            ("fifo", "support in"),
        ]
        assert stack.comments() == []  # no ticket: nothing to comment on
        done = [e for e in stack.events() if e["event"] == "activity.done"]
        assert done[-1]["activity"] == "sum_up" and done[-1]["outcome"] == "no-ticket"

    run(redis_url, zendesk, tmp_path, scenario)


def test_caller_hangs_up_in_the_queue_the_comment_still_goes(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Keys("1")], queue="abandon")
        assert_clean(stack, call)
        (comment,) = stack.comments()
        assert "queue abandoned after 0 s; call ended by flow." in comment["body"]
        abandoned = [e for e in stack.events() if e["event"] == "queue.abandoned"]
        assert abandoned and abandoned[0]["reason"] == "caller-hangup"

    run(redis_url, zendesk, tmp_path, scenario)


def test_queue_timeout_says_sorry_then_hangs_up(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Keys("1")], queue="timeout")
        assert_clean(stack, call)
        assert call.played[-2:] == [
            ("fifo", "support in"),
            ("playback", prompt(tmp_path, "es", "sorry")),
        ]
        assert call.hungup
        assert "queue timeout" in stack.comments()[0]["body"]

    run(redis_url, zendesk, tmp_path, scenario)


@pytest.mark.parametrize("at", ["menu", "greeting"])
def test_caller_hangs_up_early_the_flow_ends_cleanly(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path, at: str
) -> None:
    async def scenario(stack: FlowStack) -> None:
        if at == "menu":
            call = await stack.call([HangUp()])
        else:
            call = await stack.call([], hangup_during=("playback", 1))
        assert_clean(stack, call)
        names = [e["event"] for e in stack.events()]
        assert names.count("flow.ended") == 1
        ended = next(e for e in stack.events() if e["event"] == "flow.ended")
        assert ended["ended_by"] == "caller"

    run(redis_url, zendesk, tmp_path, scenario)


def test_menu_silence_reprompts_then_sends_to_an_agent(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([Silence(), Keys("9"), Silence()])
        assert_clean(stack, call)
        names = [arg.rsplit("/", 1)[-1] for app, arg in call.played if app == "playback"]
        assert names.count("menu-no-input.wav") == 1 and names.count("menu-no-match.wav") == 1
        assert call.played[-1] == ("fifo", "support in")

    run(redis_url, zendesk, tmp_path, scenario)


def test_a_call_with_a_session_header_stays_a_payment_call(
    redis_url: str, zendesk: FakeZendesk, tmp_path: Path
) -> None:
    async def scenario(stack: FlowStack) -> None:
        call = await stack.call([], headers={"X-Payivr-Session": "nosuchsession"})
        assert zendesk.recorded() == []
        assert (call.bye_headers or {}).get("X-Pay-Reason") == "session-not-found"

    run(redis_url, zendesk, tmp_path, scenario)
