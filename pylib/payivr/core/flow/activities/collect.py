"""``collect``: digits the caller keys that are not card data (an order number, a
PIN into a ``secure`` variable). Card data is taken only by ``pay``: at most 11
digits here, fewer than any card number has.

```yaml
order_number:
  type: collect
  prompt: enter-order          # the flow's prompt
  variable: order              # where the digits go
  min_digits: 4
  max_digits: 8                # 1 to 11
  attempts: 3                  # default 3
  timeout_ms: 8000             # default 8000: waiting for the first key
  digit_timeout_ms: 3000       # default 3000: between keys
  no_input: enter-order-again  # optional prompt before the next try
  invalid: order-too-short     # optional prompt after too few digits
  next: lookup_order
  on_failure: to_agent
```
The caller ends early with ``#``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import CollectKeys, FlowCommand, PlayPrompt
from payivr.core.flow.events import KeysEntered, NoInput
from payivr.core.flow.model import Activity, Env, FlowReader, Step

MAX_DIGITS = 11  # below the shortest card number (12): card data goes through `pay`


@dataclass(frozen=True)
class CollectDigits(Activity):
    kind: ClassVar[str] = "collect"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset(
        {"prompt", "variable", "min_digits", "max_digits", "attempts", "timeout_ms",
         "digit_timeout_ms", "no_input", "invalid", "on_failure"}
    )  # fmt: skip

    prompt: str = ""
    variable: str = ""
    min_digits: int = 1
    max_digits: int = MAX_DIGITS
    attempts: int = 3
    timeout_ms: int = 8000
    digit_timeout_ms: int = 3000
    no_input: str | None = None
    invalid: str | None = None
    on_failure: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> CollectDigits:
        prompt = r.get("prompt", str, "")
        if not prompt:
            r.problem("prompt", "required (the prompt asking for the digits)")
        for key in ("prompt", "no_input", "invalid"):
            if r.has(key):
                r.refs.prompts.append((r.path_of(key), r.get(key, str, "")))
        lowest = r.bounded_int("min_digits", 1, 1, MAX_DIGITS)
        highest = r.bounded_int("max_digits", MAX_DIGITS, 1, MAX_DIGITS)
        if lowest > highest:
            r.problem("min_digits", "must not be above max_digits")
        if nxt is None:
            r.problem("next", "required (the activity after the digits are in)")
        return cls(
            aid,
            nxt,
            on_error,
            prompt=prompt,
            variable=r.variable("variable", required=True) or "",
            min_digits=lowest,
            max_digits=highest,
            attempts=r.bounded_int("attempts", 3, 1, 9),
            timeout_ms=r.bounded_int("timeout_ms", 8000, 500, 60000),
            digit_timeout_ms=r.bounded_int("digit_timeout_ms", 3000, 500, 30000),
            no_input=r.get("no_input", str, "") or None,
            invalid=r.get("invalid", str, "") or None,
            on_failure=r.target("on_failure", required=True) or "",
        )

    def _collect(self, env: Env) -> CollectKeys:
        return CollectKeys(
            env.flow,
            self.prompt,
            env.prompt_language(self.prompt),
            1,
            self.max_digits,
            self.timeout_ms,
            self.digit_timeout_ms,
        )

    def begin(self, env: Env) -> Step:
        env.counters[self.id] = 1
        return Step((self._collect(env),), waits=(KeysEntered, NoInput))

    def answer(self, event: Any, env: Env) -> Step:
        if not isinstance(event, KeysEntered | NoInput):
            raise IllegalTransition(f"collect {self.id} waits for keys, not {type(event).__name__}")
        digits = event.digits if isinstance(event, KeysEntered) else ""
        if digits.isdigit() and self.min_digits <= len(digits) <= self.max_digits:
            env.vars.set(self.variable, digits)
            return Step(goto=self.next, outcome="collected")
        why = "no-input" if not digits else "invalid"
        tries = env.counters.get(self.id, 1)
        if tries >= self.attempts:
            return Step(goto=self.on_failure, outcome=why)
        env.counters[self.id] = tries + 1
        again = self.no_input if why == "no-input" else self.invalid
        commands: list[FlowCommand] = []
        if again is not None:
            commands.append(PlayPrompt(env.flow, again, env.prompt_language(again)))
        commands.append(self._collect(env))
        return Step(tuple(commands), waits=(KeysEntered, NoInput))
