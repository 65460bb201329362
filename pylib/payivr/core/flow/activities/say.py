"""``say``: recorded prompts, values said by FreeSWITCH, dynamic text by TTS.

```yaml
say_status:
  type: say
  items:
    - prompt: ticket-status              # a recorded prompt of the flow
    - digits: "{ticket_id}"              # one two three four (FreeSWITCH say)
    - prompt: "status-{ticket_status}"   # chosen at run time...
      fallback_text: "{ticket_status}"   # ...spoken by TTS when there is no such prompt
    - number: "{queue_position}"         # one hundred and twelve
    - date: "{updated_at}"               # an ISO 8601 date, said as a date
    - text: "Hello {first_name}"         # offline TTS (espeak-ng), cached
  next: main_menu
```
An item whose value is empty is skipped (nothing to say); a ``number`` or ``digits``
that is not digits is spoken by TTS instead, so the caller always hears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from payivr.core.flow.commands import FlowCommand, PlayPrompt, SayValue, Speak
from payivr.core.flow.model import Activity, Env, FlowReader, Step

ITEM_KINDS = ("prompt", "number", "digits", "date", "text")


@dataclass(frozen=True)
class SayItem:
    kind: str
    template: str
    fallback_text: str = ""


@dataclass(frozen=True)
class Say(Activity):
    kind: ClassVar[str] = "say"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset({"items"})

    items: tuple[SayItem, ...] = ()

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Say:
        items: list[SayItem] = []
        for i, raw in enumerate(r.get_list("items", dict)):
            ir = r.item("items", i, raw)
            kinds = [k for k in ITEM_KINDS if ir.has(k)]
            if len(kinds) != 1:
                ir.problem("", "one of " + ", ".join(ITEM_KINDS) + " per item")
                continue
            kind = kinds[0]
            template = ir.template(kind, shown=True)
            fallback = ir.template("fallback_text", shown=True) if kind == "prompt" else ""
            if kind == "prompt":
                ir.refs.prompts.append((ir.path_of(kind), template))
            ir.reject_unknown({kind, "fallback_text"} if kind == "prompt" else {kind})
            items.append(SayItem(kind, template, fallback))
        if not items:
            r.problem("items", "at least one item to say")
        if nxt is None:
            r.problem("next", "required (the activity after this one)")
        return cls(aid, nxt, on_error, tuple(items))

    def begin(self, env: Env) -> Step:
        commands: list[FlowCommand] = []
        for item in self.items:
            value = env.vars.render(item.template)
            if item.kind == "prompt":
                if value in env.prompts:
                    commands.append(PlayPrompt(env.flow, value, env.prompt_language(value)))
                elif item.fallback_text and env.vars.render(item.fallback_text):
                    commands.append(Speak(env.vars.render(item.fallback_text), env.language))
            elif not value:
                continue
            elif (item.kind in ("number", "digits") and not value.isdigit()) or item.kind == "text":
                commands.append(Speak(value, env.language))
            else:
                commands.append(SayValue(item.kind, value, env.language))
        return Step(tuple(commands), goto=self.next)
