"""``set``: give variables values (templates of other variables).

```yaml
caller_language:
  type: set
  values:
    language: "{user_locale}"   # es-ES -> es; an unsupported language is ignored
    greeting_done: "yes"
  next: find_ticket
```
A secure variable's value may only go into another secure variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from payivr.core.flow.model import Activity, Env, FlowReader, Step
from payivr.core.flow.variables import NAME


@dataclass(frozen=True)
class SetVariables(Activity):
    kind: ClassVar[str] = "set"
    keys: ClassVar[frozenset[str]] = frozenset({"values"})

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> SetVariables:
        values = {}
        section = r.section("values")
        for name, _ in section.items():
            if not NAME.match(name):
                section.problem(name, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
                continue
            section.written(name, name)
            # Into a public variable a value is as good as shown.
            shown = name not in r.refs.secure
            values[name] = section.template(name, shown=shown)
        if not values:
            r.problem("values", "at least one variable: value")
        if nxt is None:
            r.problem("next", "required (the activity after this one)")
        return cls(aid, nxt, on_error, values)

    def begin(self, env: Env) -> Step:
        rendered = {name: env.vars.render(t) for name, t in self.values.items()}
        for name, value in rendered.items():
            env.vars.set(name, value)
        return Step(goto=self.next)
