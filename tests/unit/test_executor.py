"""The one executor, through the terminal telephone of `payivr simulate`.

The ESL call (tests/esl) and agent mode (tests/agent) run the same executor; here:
the registry covers every plan command, a second engine can add a command with one
registry line, and a run that breaks records `failed` and wipes what was keyed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import io
import typing
from typing import Any

import pytest

from payivr.commands.simulate import Entry, Keypad, MemoryStore, Simulator, TerminalTelephone
from payivr.core.config import load_config
from payivr.core.plan import CapturePlan, Collect, Command, FieldReport, Finish, Play
from payivr.core.prompts import load_prompts
from payivr.core.request import parse_request
from payivr.core.result import Outcome
from payivr.core.sandbox import SandboxProcessor
from payivr.core.session import Session
from payivr.execution.context import CallContext
from payivr.execution.executor import Executor
from payivr.execution.handler import Lane
from payivr.execution.registry import REGISTRY, UnknownCommand
from payivr.execution.store import CallStore
from tests.conftest import EXAMPLE_CONFIG

TODAY = dt.date(2026, 11, 21)


def acme_request() -> tuple[Any, Any]:
    merchant = load_config(EXAMPLE_CONFIG).merchants["acme"]
    fields = {"x-pay-merchant": "acme", "x-pay-operation": "sale", "x-pay-order": "X1",
              "x-pay-amount": "1250"}  # fmt: skip
    return merchant, parse_request(fields, merchant, call_id="executor-X1")


def test_every_plan_command_has_a_handler() -> None:
    assert set(typing.get_args(Command)) <= set(REGISTRY)


class BrokenKeypad(Keypad):
    """A terminal whose input fails (EIO) on the third field; keeps what it handed out."""

    def __init__(self, lines: str, out: io.StringIO) -> None:
        super().__init__(io.StringIO(lines), out)
        self.handed: list[Entry] = []

    def read(self, collect: Collect) -> Entry | None:
        if len(self.handed) == 2:
            raise OSError(errno.EIO, "input/output error")
        entry = super().read(collect)
        if entry is not None:
            self.handed.append(entry)
        return entry


def test_a_run_that_breaks_records_failed_and_wipes_what_was_keyed() -> None:
    merchant, request = acme_request()
    out = io.StringIO()
    keypad = BrokenKeypad("4111111111111111#\n1230\n", out)
    store = MemoryStore()
    simulator = Simulator(
        CapturePlan(request, merchant, TODAY),
        request,
        load_prompts("en"),
        keypad,
        out,
        1.0,
        SandboxProcessor(b"k" * 32),
        store=store,
    )
    with pytest.raises(OSError):
        simulator.run()
    # The accepted card number and expiry the plan held are zeroed.
    assert len(keypad.handed) == 2 and all(e.digits.wiped for e in keypad.handed)
    assert simulator.result is not None
    assert (simulator.result.code, simulator.result.reason) == ("failed", "internal-error")
    stored = store.sessions[simulator.session.id]
    assert stored.result == simulator.result


@dataclasses.dataclass(frozen=True)
class Chime:
    """A command of another engine: play the goodbye prompt `times` times."""

    times: int


class ChimeHandler:
    lane = Lane.MEDIA
    after_hangup = False

    async def run(self, command: Chime, ctx: CallContext) -> None:
        for _ in range(command.times):
            await ctx.telephone.play("goodbye")


class TinyEngine:
    """A second pure engine: greets, chimes, ends."""

    last_field: FieldReport | None = None

    def start(self) -> list[Any]:
        return [Play("greeting"), Chime(2), Finish(Outcome.cancelled("flow-ended"))]

    def handle(self, event: Any) -> list[Any]:
        raise AssertionError("nothing to answer")

    def wipe(self) -> None:
        pass


def run_engine(registry: Any) -> tuple[str, MemoryStore, BaseException | None]:
    merchant, request = acme_request()
    out = io.StringIO()
    store = MemoryStore()
    telephone = TerminalTelephone(load_prompts("en"), Keypad(io.StringIO(""), out), out)
    ctx = CallContext(
        label="engine",
        plan=TinyEngine(),
        session=Session.new(request, dt.datetime.now(dt.UTC)),
        merchant=merchant,
        telephone=telephone,
        store=CallStore(store, "engine"),
        processor=SandboxProcessor(b"k" * 32),
        processor_timeout_s=1.0,
    )
    error: BaseException | None = None
    try:
        asyncio.run(Executor(registry).run(ctx))
    except UnknownCommand as exc:
        error = exc
    return out.getvalue(), store, error


def test_a_new_command_is_one_handler_and_one_registry_line() -> None:
    text, store, error = run_engine({**REGISTRY, Chime: ChimeHandler()})
    assert error is None
    goodbye = load_prompts("en")["goodbye"]
    assert text.count(f"IVR: {goodbye}") == 2
    assert text.index(load_prompts("en")["greeting"]) < text.index(goodbye)
    (session,) = store.sessions.values()
    assert session.result is not None and session.result.reason == "flow-ended"


def test_a_command_without_a_handler_fails_the_run_and_records_it() -> None:
    _, store, error = run_engine(REGISTRY)
    assert isinstance(error, UnknownCommand)
    (session,) = store.sessions.values()
    assert session.result is not None and session.result.reason == "internal-error"
