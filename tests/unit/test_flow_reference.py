"""The reference flow (flows/zendesk-caller-aware.yaml), every path, engine only."""

from __future__ import annotations

from typing import Any

import pytest

from payivr.core.flow.commands import (
    CollectKeys,
    EnterQueue,
    HangUp,
    HttpRequest,
    PlayPrompt,
    PostComment,
    SayValue,
    Speak,
)
from payivr.core.flow.events import (
    CallerHungUp,
    HttpAnswered,
    HttpFailed,
    KeysEntered,
    NoInput,
    QueueLeft,
)
from tests.unit.flow_support import commands, done, engine, events, reference, run

FLOW = "zendesk-caller-aware"
USERS = {"users": [{"id": 501, "locale": "es-ES"}], "count": 1}
TICKETS = {
    "tickets": [
        {"id": 9001, "status": "solved"},
        {"id": 8123, "status": "pending"},
        {"id": 7000, "status": "open"},
    ]
}


class Zendesk:
    """Answers the flow's commands as a script says (the engine sees only events)."""

    def __init__(self, *, users: object = USERS, tickets: object = TICKETS, keys: list[Any],
                 queue: QueueLeft | None = None, fail: str | None = None) -> None:  # fmt: skip
        self.users, self.tickets, self.keys = users, tickets, list(keys)
        self.queue = queue or QueueLeft("answered", 42, True)
        self.fail = fail

    def __call__(self, command: Any) -> Any:
        if isinstance(command, HttpRequest):
            if self.fail:
                return HttpFailed(self.fail)
            if command.path == "/api/v2/users/search.json":
                return HttpAnswered(200, self.users)
            return HttpAnswered(200, self.tickets)
        if isinstance(command, CollectKeys):
            key = self.keys.pop(0)
            return key if not isinstance(key, str) else KeysEntered(key)
        if isinstance(command, EnterQueue):
            return self.queue
        raise AssertionError(f"unexpected {command!r}")


def test_known_caller_open_ticket_hears_status_in_their_language_then_queues() -> None:
    out = run(engine(reference()), Zendesk(keys=["1"]))
    cmds = commands(out)
    lookups = [c for c in cmds if isinstance(c, HttpRequest)]
    assert lookups[0].query == (("query", "phone:34600111222"),)
    assert lookups[1].path == "/api/v2/users/501/tickets/requested.json"
    assert dict(lookups[1].query) == {
        "sort_by": "updated_at", "sort_order": "desc"
    }  # fmt: skip
    media = [c for c in cmds if isinstance(c, PlayPrompt | SayValue | Speak)]
    assert media == [
        PlayPrompt(FLOW, "welcome", "en"),
        PlayPrompt(FLOW, "ticket-status", "es"),  # the caller's locale es-ES
        SayValue("digits", "8123", "es"),  # the newest ticket below solved
        PlayPrompt(FLOW, "status-pending", "es"),
        PlayPrompt(FLOW, "queue-welcome", "es"),
    ]
    assert [c for c in cmds if isinstance(c, EnterQueue)] == [
        EnterQueue("support", "moh", 600, PlayPrompt(FLOW, "still-waiting", "es"), 45)
    ]
    comment = [c for c in cmds if isinstance(c, PostComment)]
    assert comment == [
        PostComment(
            "zendesk",
            "8123",
            "payivr call to entry support: menu choice 1; queue answered after 42 s;"
            " call ended by flow.",
        )
    ]
    names = [n for n, _ in events(out)]
    assert names[0] == "flow.started" and names[-1] == "flow.ended"
    assert "queue.entered" in names and "queue.answered" in names
    assert ("main_menu", "option-1") in done(out)


def test_known_caller_presses_2_hears_goodbye_hangup_and_comment() -> None:
    out = run(engine(reference()), Zendesk(keys=["2"]))
    cmds = commands(out)
    assert cmds[-3:-1] == [PlayPrompt(FLOW, "goodbye", "es"), HangUp()]
    assert isinstance(cmds[-1], PostComment)
    assert "menu choice 2; queue not-queued after 0 s; call ended by flow" in cmds[-1].body
    assert not any(isinstance(c, EnterQueue) for c in cmds)


@pytest.mark.parametrize(
    "script",
    [
        Zendesk(users={"users": [], "count": 0}, keys=["1"]),  # unknown caller
        Zendesk(tickets={"tickets": [{"id": 1, "status": "closed"}]}, keys=["1"]),
        Zendesk(tickets={"tickets": []}, keys=["1"]),
        Zendesk(fail="timeout", keys=["1"]),  # Zendesk slow
        Zendesk(fail="unavailable", keys=["1"]),  # Zendesk down
    ],
    ids=["unknown-caller", "only-closed", "no-tickets", "slow", "down"],
)
def test_fallback_paths_go_to_the_menu_and_queue_never_silence(script: Zendesk) -> None:
    out = run(engine(reference()), script)
    cmds = commands(out)
    assert cmds[0] == PlayPrompt(FLOW, "welcome", "en")
    assert not any(isinstance(c, SayValue) for c in cmds)
    assert any(isinstance(c, CollectKeys) and c.prompt == "menu" for c in cmds)
    assert any(isinstance(c, EnterQueue) for c in cmds)
    # No ticket id: no comment to post.
    assert not any(isinstance(c, PostComment) for c in cmds)
    assert ("sum_up", "no-ticket") in done(out)


def test_menu_reprompts_then_sends_to_an_agent() -> None:
    out = run(engine(reference()), Zendesk(keys=[NoInput(), "7", NoInput()]))
    prompts = [c.name for c in commands(out) if isinstance(c, PlayPrompt)]
    assert prompts.count("menu-no-input") == 1 and prompts.count("menu-no-match") == 1
    assert ("main_menu", "no-input") in done(out)
    assert any(isinstance(c, EnterQueue) for c in commands(out))


def test_unknown_status_is_spoken_by_tts() -> None:
    tickets = {"tickets": [{"id": 55, "status": "hold"}, {"id": 56, "status": "new"}]}
    out = run(engine(reference()), Zendesk(tickets=tickets, keys=["2"]))
    assert PlayPrompt(FLOW, "status-hold", "es") in commands(out)


def test_caller_hangs_up_while_queued_after_hangup_handler_runs() -> None:
    out = run(engine(reference()), Zendesk(keys=["1"], queue=QueueLeft("abandoned", 17, True)))
    cmds = commands(out)
    assert "queue abandoned after 17 s; call ended by flow" in cmds[-1].body
    abandoned = [f for n, f in events(out) if n == "queue.abandoned"]
    assert abandoned and abandoned[0]["reason"] == "caller-hangup"


def test_queue_timeout_says_sorry_and_hangs_up() -> None:
    out = run(engine(reference()), Zendesk(keys=["1"], queue=QueueLeft("timeout", 600, False)))
    cmds = commands(out)
    assert PlayPrompt(FLOW, "sorry", "es") in cmds
    assert HangUp() in cmds


@pytest.mark.parametrize("at", range(4))
def test_hangup_at_each_waiting_step_runs_the_comment_once(at: int) -> None:
    """The caller hangs up at the n-th wait (lookup, lookup, menu, queue ...)."""
    eng = engine(reference())
    script = Zendesk(keys=["1"])
    out = eng.start()
    waits = 0
    while waits < at:
        out += eng.handle(script(out[-1]))
        waits += 1
    assert not eng.finished
    out += eng.handle(CallerHungUp())
    assert eng.finished
    assert eng.handle(CallerHungUp()) == []  # heard again later: nothing changes
    assert [n for n, _ in events(out)].count("flow.ended") == 1
    posts = [c for c in out if isinstance(c, PostComment)]
    assert len(posts) <= 1
    if at >= 2:  # the ticket is known from the second lookup on
        assert len(posts) == 1
