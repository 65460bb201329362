"""FreeSWITCH configuration for call flows (docs/flows.md): the `payivr-flow`
dialplan extension and the mod_fifo queues.

- `payivr-flow` (before `payivr-payment` in the payivr context): a call from
  Kamailio without a payivr session whose number dialled is an entry point (or
  that carries an entry point's trunk header) goes to the ESL application's outbound
  socket, which runs the entry point's flow. `sensitive_dtmf` is set first, as for
  payment calls: a flow may take a payment or a PIN.
- `fifo.conf`: one fifo per `flows.queues` entry; its agents are outbound members
  rung by SIP URI through the payivr profile, all at once (`simo`), each for
  `ring_timeout_s`. The caller waits in `fifo <queue> in` hearing `fifo_music`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from payivr.core.flow.settings import EntryPoint, QueueSettings

ANCHOR = '<extension name="payivr-payment">'
# Seconds before an agent who was offered a call may be offered the next one.
AGENT_LAG_S = 5


def flow_extension(
    entries: Iterable[EntryPoint], kamailio_addr_regex: str, esl_targets: str
) -> str:
    """The `payivr-flow` extension ("" when no entry point is configured)."""
    numbers = sorted({e.number for e in entries if e.number})
    headers: dict[str, set[str]] = {}
    for e in entries:
        if e.header is not None:
            headers.setdefault(e.header[0], set()).add(e.header[1])
    if not numbers and not headers:
        return ""
    tests = []
    if numbers:
        tests.append(("destination_number", _alternatives(numbers)))
    for name, values in sorted(headers.items()):
        tests.append((f"${{sip_h_{name}}}", _alternatives(sorted(values))))
    regexes = "\n".join(
        f"        <regex field={quoteattr(field)} expression={quoteattr(expr)}/>"
        for field, expr in tests
    )
    return f"""<extension name="payivr-flow">
      <!-- Call flows (docs/flows.md): an entry point's call, from Kamailio, without
           a payivr session, to the ESL application, which runs its flow. -->
      <condition field="network_addr" expression={quoteattr(kamailio_addr_regex)}/>
      <condition field="${{sip_h_X-Payivr-Session}}" expression="^$"/>
      <condition regex="any">
{regexes}
        <action application="set" data="sensitive_dtmf=true"/>
        <action application="socket" data={quoteattr(esl_targets + " async full")}/>
        <action application="hangup" data="NORMAL_TEMPORARY_FAILURE"/>
      </condition>
    </extension>

    """


def insert_flow_extension(dialplan_xml: str, extension: str) -> str:
    if not extension or 'name="payivr-flow"' in dialplan_xml:
        return dialplan_xml
    at = dialplan_xml.find(ANCHOR)
    if at < 0:
        raise ValueError("the dialplan has no payivr-payment extension to insert before")
    return dialplan_xml[:at] + extension + dialplan_xml[at:]


def fifo_queues(queues: Iterable[QueueSettings], sofia_profile: str = "payivr") -> str:
    """The `<fifo>` elements of fifo.conf.xml."""
    out = []
    for q in queues:
        members = "\n".join(
            f'      <member timeout="{q.ring_timeout_s}" simo="1" lag="{AGENT_LAG_S}">'
            f"{escape('{fifo_member_wait=nowait}')}sofia/{sofia_profile}/{escape(agent)}</member>"
            for agent in q.agents
        )
        out.append(f'    <fifo name={quoteattr(q.name)} importance="0">\n{members}\n    </fifo>')
    return "\n".join(out)


def _alternatives(values: list[str]) -> str:
    return "^(" + "|".join(re.escape(v) for v in values) + ")$"
