"""``condition``: two ways on one test.

```yaml
known_caller:
  type: condition
  test: "{user_id}"
  is: not-empty          # empty, not-empty, equals, not-equals
  # value: "open"        # for equals / not-equals
  then: caller_language
  else: main_menu
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from payivr.core.flow.model import Activity, Env, FlowReader, Step

TESTS = ("empty", "not-empty", "equals", "not-equals")


@dataclass(frozen=True)
class Condition(Activity):
    kind: ClassVar[str] = "condition"
    keys: ClassVar[frozenset[str]] = frozenset({"test", "is", "value", "then", "else"})

    test: str = ""
    is_: str = "not-empty"
    value: str = ""
    then: str = ""
    else_: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Condition:
        if nxt is not None:
            r.problem("next", "a condition goes to `then` or `else`")
        how = r.choice("is", TESTS, "not-empty")
        if how in ("equals", "not-equals") and not r.has("value"):
            r.problem("value", f"required with is: {how}")
        return cls(
            aid,
            None,
            on_error,
            test=r.template("test", shown=False, required=True),
            is_=how,
            value=r.template("value", shown=False),
            then=r.target("then", required=True) or "",
            else_=r.target("else", required=True) or "",
        )

    def begin(self, env: Env) -> Step:
        tested = env.vars.render(self.test).strip()
        expected = env.vars.render(self.value).strip()
        holds = {
            "empty": tested == "",
            "not-empty": tested != "",
            "equals": tested == expected,
            "not-equals": tested != expected,
        }[self.is_]
        return Step(goto=self.then if holds else self.else_, outcome="then" if holds else "else")
