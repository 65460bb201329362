"""``switch``: one of several ways, by a value.

```yaml
by_status:
  type: switch
  value: "{ticket_status}"
  cases: {new: say_new, open: say_open, pending: say_pending}
  default: main_menu
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from payivr.core.flow.model import Activity, Env, FlowReader, Step


@dataclass(frozen=True)
class Switch(Activity):
    kind: ClassVar[str] = "switch"
    keys: ClassVar[frozenset[str]] = frozenset({"value", "cases", "default"})

    value: str = ""
    cases: Mapping[str, str] = field(default_factory=dict)
    default: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Switch:
        if nxt is not None:
            r.problem("next", "a switch goes to one of its cases or its default")
        cases = {}
        section = r.section("cases")
        for key, value in section.items():
            target = section.target_value(key, value)
            if target is not None:
                cases[key] = target
        if not cases:
            r.problem("cases", "at least one case (value: activity id)")
        return cls(
            aid,
            None,
            on_error,
            value=r.template("value", shown=False, required=True),
            cases=cases,
            default=r.target("default", required=True) or "",
        )

    def begin(self, env: Env) -> Step:
        value = env.vars.render(self.value).strip()
        if value in self.cases:
            # The case's position, not its value: the value may come from a secure one.
            position = list(self.cases).index(value) + 1
            return Step(goto=self.cases[value], outcome=f"case-{position}")
        return Step(goto=self.default, outcome="default")
