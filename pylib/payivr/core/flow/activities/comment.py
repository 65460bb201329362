"""``comment``: a private comment on a ticket, delivered after the call.

```yaml
sum_up:
  type: comment
  connector: zendesk
  ticket: "{ticket_id}"        # no ticket id: nothing is posted
  body: "Call from entry {entry}: chose {menu_choice}, waited {queue_wait_s} s."
  next: end                    # optional
```
The comment goes into the connector's durable outbox at once and is delivered with
retries, so it is not lost when the service is down. Runs after the hang-up too (the
usual place: ``handlers.after_hangup``). No secure variable may appear in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from payivr.core.flow.commands import PostComment
from payivr.core.flow.model import Activity, Env, FlowReader, Step


@dataclass(frozen=True)
class Comment(Activity):
    kind: ClassVar[str] = "comment"
    keys: ClassVar[frozenset[str]] = frozenset({"connector", "ticket", "body"})

    connector: str = ""
    ticket: str = ""
    body: str = ""

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Comment:
        connector = r.get("connector", str, "")
        if not connector:
            r.problem("connector", "required (a connector of services.connectors)")
        else:
            r.refs.connectors.append((r.path_of("connector"), connector))
        return cls(
            aid,
            nxt,
            on_error,
            connector=connector,
            ticket=r.template("ticket", shown=True, required=True),
            body=r.template("body", shown=True, required=True),
        )

    def begin(self, env: Env) -> Step:
        ticket = env.vars.render(self.ticket).strip()
        if not ticket:
            return Step(goto=self.next, outcome="no-ticket")
        body = env.vars.render(self.body)
        return Step((PostComment(self.connector, ticket, body),), goto=self.next, outcome="queued")
