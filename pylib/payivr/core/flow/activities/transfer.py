"""``transfer``: hand the call on, e.g. to a contact center's queue URI.

```yaml
to_contact_center:
  type: transfer
  uri: "sip:support-queue@cc.example.com"
  headers:                       # X- headers on the INVITE/REFER (templates)
    X-Ticket-Id: "{ticket_id}"
    X-Caller-Language: "{language}"
  payment_headers: true          # add the signed X-Pay-* result of the flow's payment
```
The caller's part of the flow ends here; the after-hang-up handler runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from payivr.core.flow.commands import Transfer as TransferCommand
from payivr.core.flow.model import Activity, Env, FlowReader, Step
from payivr.core.siputil import parse_sip_uri

HEADER = re.compile(r"^X-[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class Transfer(Activity):
    kind: ClassVar[str] = "transfer"
    media: ClassVar[bool] = True
    keys: ClassVar[frozenset[str]] = frozenset({"uri", "headers", "payment_headers"})

    uri: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    payment_headers: bool = False

    @classmethod
    def parse(cls, aid: str, r: FlowReader, nxt: str | None, on_error: str | None) -> Transfer:
        uri = r.template("uri", shown=True, required=True)
        # A template ("{var}") is checked when the call runs; a literal must parse.
        if uri and not uri.startswith("{") and parse_sip_uri(uri) is None:
            r.problem("uri", "must be a sip: or sips: URI")
        headers = []
        section = r.section("headers")
        for name, _ in section.items():
            if not HEADER.match(name) or name.lower().startswith("x-pay-"):
                section.problem(name, "an X- header name (X-Pay-* are payivr's own)")
                continue
            headers.append((name, section.template(name, shown=True)))
        if nxt is not None:
            r.problem("next", "the call leaves the flow here (use handlers.after_hangup)")
        return cls(aid, None, on_error, uri, tuple(headers), r.get("payment_headers", bool, False))

    def begin(self, env: Env) -> Step:
        uri = env.vars.render(self.uri)
        # A URI filled from a variable (a CRM's answer) reaches FreeSWITCH's dial
        # string: anything that is not one plain SIP URI is refused here.
        parsed = parse_sip_uri(uri, name_addr=False)
        if parsed is None or any(c in uri for c in ",|{}[]^ \t"):
            return Step(outcome="failed", error="invalid-uri")
        command = TransferCommand(
            uri,
            tuple((name, env.vars.render(t)) for name, t in self.headers),
            self.payment_headers,
        )
        return Step((command,), outcome="transferred", ends_call=True)
