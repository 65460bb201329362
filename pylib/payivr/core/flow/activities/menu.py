"""``menu``: a prompt, one key per option, re-prompts on no input or a wrong key.

```yaml
main_menu:
  type: menu
  prompt: menu                 # "To talk to an agent press 1, to end this call press 2"
  options: {"1": to_agent, "2": goodbye}
  variable: menu_choice        # optional: the key chosen, for later activities
  attempts: 3                  # tries in all (default 3)
  timeout_ms: 5000             # waiting for a key (default 5000)
  no_input: menu-no-input      # optional prompt before the next try after silence
  no_match: menu-no-match      # optional prompt before the next try after a wrong key
  on_failure: to_agent         # required: where to go when the tries are used up
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import CollectKeys, FlowCommand, PlayPrompt
from payivr.core.flow.events import KeysEntered, NoInput
from payivr.core.flow.model import Activity, Env, FlowReader, Step

OPTION_KEY = re.compile(r"^[0-9*#]{1,4}$")
DIGIT_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Menu(Activity):
    kind: ClassVar[str] = "menu"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset(
        {"prompt", "options", "variable", "attempts", "timeout_ms", "no_input", "no_match",
         "on_failure"}
    )  # fmt: skip

    prompt: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    variable: str | None = None
    attempts: int = 3
    timeout_ms: int = 5000
    no_input: str | None = None
    no_match: str | None = None
    on_failure: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Menu:
        prompt = r.get("prompt", str, "")
        if not prompt:
            r.problem("prompt", "required (the menu's prompt)")
        prompts = [("prompt", prompt)] + [
            (k, r.get(k, str, "")) for k in ("no_input", "no_match") if r.has(k)
        ]
        for key, name in prompts:
            r.refs.prompts.append((r.path_of(key), name))
        options: dict[str, str] = {}
        section = r.section("options")
        for key, value in section.items():
            if not OPTION_KEY.match(key):
                section.problem(key, "an option is 1 to 4 keys of 0-9, * and #")
            target = section.target_value(key, value)
            if target is not None:
                options[key] = target
        if not options:
            r.problem("options", "at least one option (key: activity id)")
        if nxt is not None:
            r.problem("next", "a menu goes where its options say (use options and on_failure)")
        return cls(
            aid,
            None,
            on_error,
            prompt=prompt,
            options=options,
            variable=r.variable("variable"),
            attempts=r.bounded_int("attempts", 3, 1, 9),
            timeout_ms=r.bounded_int("timeout_ms", 5000, 500, 60000),
            no_input=r.get("no_input", str, "") or None,
            no_match=r.get("no_match", str, "") or None,
            on_failure=r.target("on_failure", required=True) or "",
        )

    def _collect(self, env: Env) -> CollectKeys:
        longest = max((len(k) for k in self.options), default=1)
        return CollectKeys(
            env.flow,
            self.prompt,
            env.prompt_language(self.prompt),
            1,
            longest,
            self.timeout_ms,
            DIGIT_TIMEOUT_MS,
            "" if any("#" in k for k in self.options) else "#",
        )

    def begin(self, env: Env) -> Step:
        env.counters[self.id] = 1
        return Step((self._collect(env),), waits=(KeysEntered, NoInput))

    def answer(self, event: Any, env: Env) -> Step:
        if isinstance(event, KeysEntered) and event.digits in self.options:
            if self.variable is not None:
                env.vars.set(self.variable, event.digits)
            secure = self.variable is not None and self.variable in env.vars.secure
            outcome = "option" if secure else f"option-{event.digits}"
            return Step(goto=self.options[event.digits], outcome=outcome)
        if not isinstance(event, KeysEntered | NoInput):
            raise IllegalTransition(f"menu {self.id} waits for keys, not {type(event).__name__}")
        why = "no-input" if isinstance(event, NoInput) or not event.digits else "no-match"
        tries = env.counters.get(self.id, 1)
        if tries >= self.attempts:
            return Step(goto=self.on_failure, outcome=why)
        env.counters[self.id] = tries + 1
        commands: list[FlowCommand] = []
        again = self.no_input if why == "no-input" else self.no_match
        if again is not None:
            commands.append(PlayPrompt(env.flow, again, env.prompt_language(again)))
        commands.append(self._collect(env))
        return Step(tuple(commands), waits=(KeysEntered, NoInput))
