"""Each activity of the flow engine, its paths and errors (pure: no driver)."""

from __future__ import annotations

import pytest

from payivr.core.errors import IllegalTransition
from payivr.core.flow import FlowError, FlowStuck
from payivr.core.flow.commands import (
    CollectKeys,
    EnterQueue,
    HangUp,
    HttpRequest,
    PlayPrompt,
    PostComment,
    SayValue,
    Speak,
    StartPayment,
    Transfer,
)
from payivr.core.flow.engine import MAX_STEPS
from payivr.core.flow.events import (
    CallerHungUp,
    HttpAnswered,
    HttpFailed,
    KeysEntered,
    NoInput,
    PaymentDone,
    QueueLeft,
)
from tests.unit.flow_support import commands, done, engine, events, flow_of

HEAD = """
flow: t
language: en
prompts:
  ask: {en: Enter your order number, es: Introduzca su pedido}
  again: {en: Again}
  bad: {en: Too short}
  bye: {en: Bye}
"""


def build(body: str, start: str = "a") -> str:
    return HEAD + f"start: {start}\n" + body


COLLECT = build("""
variables: {order: ""}
activities:
  a: {type: collect, prompt: ask, variable: order, min_digits: 4, max_digits: 8, attempts: 2,
      no_input: again, invalid: bad, next: b, on_failure: c}
  b: {type: say, items: [{digits: "{order}"}], next: c}
  c: {type: hangup}
""")


def test_collect_stores_digits_and_goes_on() -> None:
    eng = engine(flow_of(COLLECT))
    first = commands(eng.start())
    assert first == [CollectKeys("t", "ask", "en", 1, 8, 8000, 3000, "#")]
    out = eng.handle(KeysEntered("12345"))
    assert commands(out) == [SayValue("digits", "12345", "en"), HangUp()]
    assert eng.variables.get("order") == "12345"


def test_collect_reprompts_then_fails_over() -> None:
    eng = engine(flow_of(COLLECT))
    eng.start()
    again = commands(eng.handle(KeysEntered("12")))
    assert again == [PlayPrompt("t", "bad", "en"), CollectKeys("t", "ask", "en", 1, 8, 8000, 3000)]
    out = eng.handle(NoInput())
    assert commands(out) == [HangUp()]
    assert done(out)[0] == ("a", "no-input")
    assert eng.variables.get("order") == ""


def test_collect_refuses_card_length_entries() -> None:
    with pytest.raises(Exception, match="max_digits: must be an integer from 1 to 11"):
        flow_of(COLLECT.replace("max_digits: 8", "max_digits: 16"))


def test_an_event_not_waited_for_raises_and_changes_nothing() -> None:
    eng = engine(flow_of(COLLECT))
    eng.start()
    with pytest.raises(IllegalTransition):
        eng.handle(HttpAnswered(200, {}))
    with pytest.raises(IllegalTransition):
        eng.handle(PaymentDone("approved", "", "s", False))
    assert commands(eng.handle(KeysEntered("1234")))[0] == SayValue("digits", "1234", "en")
    with pytest.raises(IllegalTransition):
        eng.start()


def test_handle_before_start_raises() -> None:
    with pytest.raises(IllegalTransition):
        engine(flow_of(COLLECT)).handle(NoInput())


BRANCHES = build("""
variables: {status: "", kind: ""}
activities:
  a: {type: set, values: {status: open, language: pt-BR}, next: b}
  b: {type: condition, test: "{status}", is: equals, value: open, then: c, else: z}
  c: {type: switch, value: "{status}", cases: {new: z, open: d}, default: z}
  d: {type: say, items: [{number: "{status}"}, {text: "Status {status}"}, {date: ""}], next: z}
  z: {type: hangup}
""")


def test_set_condition_switch_and_say() -> None:
    eng = engine(flow_of(BRANCHES))
    out = eng.start()
    assert eng.variables.get("language") == "pt"
    assert done(out)[:3] == [("a", "done"), ("b", "then"), ("c", "case-2")]
    # not digits: spoken by TTS; an empty date is skipped
    assert commands(out) == [Speak("open", "pt"), Speak("Status open", "pt"), HangUp()]


def test_unsupported_language_is_ignored() -> None:
    eng = engine(flow_of(BRANCHES.replace("pt-BR", "fr-FR")))
    eng.start()
    assert eng.variables.get("language") == "en"


HTTP = build("""
variables: {id: "", name: ""}
activities:
  a:
    type: http
    connector: crm
    method: POST
    path: "/people/{ani_digits}"
    query: {q: "x{ani_digits}"}
    body: {who: "{ani}", tags: [a, "{entry}"], n: 3}
    outputs: {id: "$.person.id", name: "$.person.names[-1]"}
    next: b
    ERROR
  b: {type: say, items: [{text: "{name}"}], next: z}
  e: {type: say, items: [{prompt: bye}], next: z}
  z: {type: hangup}
handlers:
  on_error: e
""")


def test_http_request_and_outputs() -> None:
    eng = engine(flow_of(HTTP.replace("ERROR", "")))
    first = commands(eng.start())
    assert first == [
        HttpRequest("crm", "POST", "/people/34600111222", (("q", "x34600111222"),),
                    {"who": "+34 600 111 222", "tags": ["a", "support"], "n": 3})
    ]  # fmt: skip
    out = eng.handle(HttpAnswered(200, {"person": {"id": 7, "names": ["A", "Bo"]}}))
    assert eng.variables.get("id") == "7"
    assert commands(out) == [Speak("Bo", "en"), HangUp()]


def test_http_error_goes_to_the_activity_on_error_first() -> None:
    eng = engine(flow_of(HTTP.replace("ERROR", "on_error: z")))
    eng.start()
    out = eng.handle(HttpFailed("timeout"))
    assert commands(out) == [HangUp()]
    assert eng.variables.get("error") == "timeout"
    assert done(out)[0] == ("a", "error-timeout")


def test_http_error_goes_to_the_flow_on_error_handler() -> None:
    eng = engine(flow_of(HTTP.replace("ERROR", "")))
    eng.start()
    out = eng.handle(HttpFailed("unavailable", 503))
    assert commands(out) == [PlayPrompt("t", "bye", "en"), HangUp()]
    assert eng.variables.get("error_activity") == "a"


def test_http_error_without_handlers_hangs_up() -> None:
    text = HTTP.replace("ERROR", "").replace("handlers:\n  on_error: e\n", "")
    text = text.replace("  e: {type: say, items: [{prompt: bye}], next: z}\n", "")
    eng = engine(flow_of(text))
    eng.start()
    assert commands(eng.handle(HttpFailed("rejected", 401))) == [HangUp()]
    assert eng.finished


def test_the_flow_on_error_handler_runs_once() -> None:
    text = build("""
activities:
  a: {type: http, connector: c, path: /x, next: z}
  h: {type: http, connector: c, path: /y, next: z}
  z: {type: hangup}
handlers: {on_error: h}
""")
    eng = engine(flow_of(text))
    eng.start()
    assert commands(eng.handle(HttpFailed("timeout")))[0].path == "/y"
    assert commands(eng.handle(HttpFailed("timeout"))) == [HangUp()]


def test_after_hangup_http_error_ends_the_flow() -> None:
    text = build("""
activities:
  a: {type: hangup}
  h: {type: http, connector: c, path: /x, next: k}
  k: {type: comment, connector: c, ticket: "1", body: done}
handlers: {after_hangup: h}
""")
    eng = engine(flow_of(text))
    eng.start()
    out = eng.handle(HttpFailed("timeout"))
    assert eng.finished and not any(isinstance(c, PostComment) for c in out)
    eng2 = engine(flow_of(text))
    eng2.start()
    assert commands(eng2.handle(HttpAnswered(200, None))) == [PostComment("c", "1", "done")]


TRANSFER_PAY = build("""
variables: {due: "1250"}
activities:
  a: {type: pay, merchant: acme, amount: "{due}", currency: EUR, order: "O{ani_digits}",
      description: "Invoice", next: b}
  b: {type: transfer, uri: "sip:cc@127.0.0.1", headers: {X-Paid: "{pay_result}"},
      payment_headers: true}
""")


def test_pay_then_transfer_with_payment_headers() -> None:
    eng = engine(flow_of(TRANSFER_PAY), language="es")
    first = commands(eng.start())
    assert first == [StartPayment("acme", "sale", "1250", "EUR", "O34600111222", "es", "Invoice")]
    out = eng.handle(PaymentDone("approved", "", "sess1", False))
    assert commands(out) == [Transfer("sip:cc@127.0.0.1", (("X-Paid", "approved"),), True)]
    assert ("a", "approved") in done(out)
    assert eng.finished


def test_pay_caller_gone_ends_the_flow() -> None:
    eng = engine(flow_of(TRANSFER_PAY))
    eng.start()
    out = eng.handle(PaymentDone("cancelled", "caller-hangup", "s", True))
    assert commands(out) == [] and eng.finished
    assert eng.variables.get("ended_by") == "flow"


def test_queue_answered_caller_still_there_goes_next() -> None:
    text = build("""
activities:
  a: {type: queue, queue: sales, next: z}
  z: {type: hangup}
""")
    eng = engine(flow_of(text))
    eng.start()
    out = eng.handle(QueueLeft("answered", 3, False))
    assert commands(out) == [HangUp()]
    assert next(n for n, _ in events(out)) == "queue.answered"


def test_queue_wait_announcement_repeats_a_prompt_in_the_calls_language() -> None:
    def entered(queue: str) -> list[EnterQueue]:
        text = build(f"""
activities:
  a: {queue}
  z: {{type: hangup}}
""")
        out = engine(flow_of(text)).start()
        return [c for c in commands(out) if isinstance(c, EnterQueue)]

    chimed = "{type: queue, queue: sales, chime: again, chime_every_s: 45, next: z}"
    assert entered(chimed) == [EnterQueue("sales", "moh", 900, PlayPrompt("t", "again", "en"), 45)]
    assert entered("{type: queue, queue: sales, next: z}") == [EnterQueue("sales", "moh", 900)]


def test_queue_wait_announcement_must_be_a_prompt_of_the_flow() -> None:
    text = build("""
activities:
  a: {type: queue, queue: sales, chime: missing, chime_every_s: 5, next: z}
  z: {type: hangup}
""")
    with pytest.raises(FlowError) as info:
        flow_of(text)
    found = "\n".join(info.value.problems)
    assert "activities.a.chime" in found and "missing" in found
    assert "activities.a.chime_every_s" in found


def test_menu_with_secure_variable_hides_the_choice() -> None:
    text = build("""
variables: {pin: {secure: true}}
activities:
  a: {type: menu, prompt: ask, options: {"12": z}, variable: pin, on_failure: z}
  z: {type: hangup}
""")
    eng = engine(flow_of(text))
    first = eng.start()
    assert commands(first)[0].max_digits == 2
    out = eng.handle(KeysEntered("12"))
    assert done(out)[0] == ("a", "option")
    assert "12" not in repr(out) and "12" not in repr(KeysEntered("12"))
    eng.wipe()
    assert eng.variables.get("pin") == ""


def test_flow_that_runs_out_hangs_up() -> None:
    text = build("""
activities:
  a: {type: comment, connector: c, ticket: "", body: x}
""")
    eng = engine(flow_of(text))
    out = eng.start()
    assert commands(out) == [HangUp()]
    assert eng.finished


def test_caller_hangup_while_waiting_runs_handler() -> None:
    eng = engine(flow_of(COLLECT))
    eng.start()
    out = eng.handle(CallerHungUp())
    assert ("a", "caller-hangup") in done(out)
    assert eng.variables.get("ended_by") == "caller"
    assert eng.finished


def test_endless_loop_through_waiting_activities_is_stopped() -> None:
    text = build("""
activities:
  a: {type: http, connector: c, path: /x, next: b, on_error: a}
  b: {type: hangup}
""")
    eng = engine(flow_of(text))
    eng.start()
    for _ in range(5):
        assert commands(eng.handle(HttpFailed("timeout")))[0].path == "/x"
    assert not eng.finished


def test_a_run_of_more_than_max_steps_activities_without_a_wait_is_stopped() -> None:
    chain = "".join(
        f'  s{i}: {{type: set, values: {{n: "{i}"}}, next: s{i + 1}}}\n' for i in range(MAX_STEPS)
    )
    text = build(
        "variables: {n: ''}\nactivities:\n" + chain + f"  s{MAX_STEPS}: {{type: hangup}}\n", "s0"
    )
    with pytest.raises(FlowStuck):
        engine(flow_of(text)).start()


@pytest.mark.parametrize(
    "agent",
    [
        "sip:agent@10.0.0.5",  # a plain URI: transferred
        "sip:a@h,sofia/gateway/x/123",  # a second dial target
        "user/1000",  # not a SIP URI
        "{absolute_codec_string=PCMU}sip:a@h",  # channel variables
        "sip:a@h|sip:b@h",  # FreeSWITCH's "or" separator
    ],
)
def test_a_transfer_uri_from_a_variable_must_be_one_sip_uri(agent: str) -> None:
    text = build("""
variables: {agent: ""}
activities:
  a: {type: set, values: {agent: "{ani}"}, next: b}
  b: {type: transfer, uri: "{agent}", on_error: z}
  z: {type: hangup}
""")
    eng = engine(flow_of(text), ani=agent)
    out = eng.start()
    if agent == "sip:agent@10.0.0.5":
        assert commands(out) == [Transfer(agent, (), False)]
    else:
        assert commands(out) == [HangUp()]
        assert ("b", "failed") in done(out)
        assert eng.variables.get("error") == "invalid-uri"
