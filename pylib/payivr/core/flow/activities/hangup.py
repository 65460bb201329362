"""``hangup``: end the call, after the prompts before it have played.

```yaml
goodbye_end:
  type: hangup
```
The after-hang-up handler runs next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from payivr.core.flow.commands import HangUp as HangUpCommand
from payivr.core.flow.model import Activity, Env, FlowReader, Step


@dataclass(frozen=True)
class HangUp(Activity):
    kind: ClassVar[str] = "hangup"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> HangUp:
        if nxt is not None:
            r.problem("next", "the call ends here (use handlers.after_hangup)")
        return cls(aid, None, on_error)

    def begin(self, env: Env) -> Step:
        return Step((HangUpCommand(),), outcome="hangup", ends_call=True)
