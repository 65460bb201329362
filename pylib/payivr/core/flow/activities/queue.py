"""``queue``: the caller waits with music on hold until an agent answers.

```yaml
to_agent:
  type: queue
  queue: support          # a FreeSWITCH queue (mod_fifo) of payivr's config
  music: moh              # the hold music payivr builds (default moh)
  timeout_s: 600          # then on_timeout (default 900)
  announce: queue-welcome # optional prompt before the music
  chime: still-waiting    # optional prompt repeated while the caller waits...
  chime_every_s: 45       # ...this often (default 30)
  next: goodbye           # after the agent's talk, if the caller is still there
  on_timeout: sorry       # optional (default: next)
```
Sets ``queue_outcome`` (answered, abandoned, timeout) and ``queue_wait_s``. The events
``queue.entered`` and ``queue.answered`` / ``queue.abandoned`` follow the caller. A
caller who hangs up while waiting ends the flow: the after-hang-up handler runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from payivr.core.errors import IllegalTransition
from payivr.core.flow.commands import EnterQueue, FlowCommand, PlayPrompt
from payivr.core.flow.events import QueueLeft
from payivr.core.flow.model import Activity, Env, FlowReader, Step
from payivr.core.reasons import Reason

QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
OUTCOME = "queue_outcome"
WAIT = "queue_wait_s"


def _named(value: str) -> bool:
    return bool(QUEUE_NAME.match(value))


@dataclass(frozen=True)
class Queue(Activity):
    kind: ClassVar[str] = "queue"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset(
        {"queue", "music", "timeout_s", "announce", "chime", "chime_every_s", "on_timeout"}
    )

    queue: str = ""
    music: str = "moh"
    timeout_s: int = 900
    announce: str | None = None
    chime: str | None = None
    chime_every_s: int = 30
    on_timeout: str | None = None

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Queue:
        queue = r.get(
            "queue",
            str,
            "",
            check=lambda v: bool(QUEUE_NAME.match(v)),
            what="a queue name ([a-z0-9_-])",
        )
        if not queue:
            r.problem("queue", "required (a queue name)")
        announce = r.get("announce", str, "") or None
        if announce is not None:
            r.refs.prompts.append((r.path_of("announce"), announce))
        chime = r.get("chime", str, "") or None
        if chime is not None:
            r.refs.prompts.append((r.path_of("chime"), chime))
        if nxt is None:
            r.problem("next", "required (the activity after the agent's talk)")
        r.written("queue", OUTCOME)
        r.written("queue", WAIT)
        return cls(
            aid,
            nxt,
            on_error,
            queue=queue,
            music=r.get(
                "music", str, "moh", check=lambda v: bool(QUEUE_NAME.match(v)), what="a music name"
            ),
            timeout_s=r.bounded_int("timeout_s", 900, 10, 7200),
            announce=announce,
            chime=chime,
            chime_every_s=r.bounded_int("chime_every_s", 30, 10, 600),
            on_timeout=r.target("on_timeout"),
        )

    def begin(self, env: Env) -> Step:
        commands: list[FlowCommand] = []
        if self.announce is not None:
            commands.append(PlayPrompt(env.flow, self.announce, env.prompt_language(self.announce)))
        if self.chime is None:
            commands.append(EnterQueue(self.queue, self.music, self.timeout_s))
        else:
            chime = PlayPrompt(env.flow, self.chime, env.prompt_language(self.chime))
            commands.append(
                EnterQueue(self.queue, self.music, self.timeout_s, chime, self.chime_every_s)
            )
        entered = ("queue.entered", {"queue": self.queue})
        return Step(tuple(commands), waits=(QueueLeft,), events=(entered,))

    def answer(self, event: Any, env: Env) -> Step:
        if not isinstance(event, QueueLeft):
            raise IllegalTransition(f"queue {self.id} waits for QueueLeft, not {event!r}")
        env.vars.set(OUTCOME, event.outcome)
        env.vars.set(WAIT, str(event.wait_s))
        name = "queue.answered" if event.outcome == "answered" else "queue.abandoned"
        fields = {"queue": self.queue, "wait_s": str(event.wait_s)}
        if name == "queue.abandoned":
            fields["reason"] = "timeout" if event.outcome == "timeout" else Reason.CALLER_HANGUP
        left = ((name, fields),)
        if event.hungup:
            return Step(outcome=event.outcome, ends_call=True, events=left)
        if event.outcome == "timeout" and self.on_timeout is not None:
            return Step(goto=self.on_timeout, outcome=event.outcome, events=left)
        return Step(goto=self.next, outcome=event.outcome, events=left)
