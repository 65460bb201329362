"""The FreeSWITCH dialplan extension for secure-trunk (agent-mode) calls.

It belongs in the `payivr` context, before `payivr-payment`: a call from Kamailio
marked `X-Payivr-Mode: agent`, with Kamailio's session and the agent's URI, goes to the
agent service's outbound socket, which bridges it to the agent and keeps it for the
whole call. Unlike payment calls, `sensitive_dtmf` is not set here: outside a payment
the caller's DTMF must reach the agent (IVR menus, extensions); the agent service
guards each payment itself (payivr.agent.guard).

If the agent service is unreachable or refuses the call, the call is answered with a
failure rather than bridged by the dialplan: an unchecked `X-Pay-Agent` must never
become a bridge target (the service checks it against the merchant's allowlist).

`payivr freeswitch render` renders `dialplans/payivr.xml`; until it includes this
extension itself (docs/agent-assisted.md), `insert_agent_extension` adds it to a
rendered dialplan (the real-FreeSWITCH test does so).
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

ANCHOR = '<extension name="payivr-payment">'


def agent_extension(kamailio_addr_regex: str, socket_host: str, socket_port: int) -> str:
    """The `<extension>` element, indented for the payivr context."""
    socket = quoteattr(f"{socket_host}:{socket_port} async full")
    addr = quoteattr(kamailio_addr_regex)
    return f"""<extension name="payivr-agent-trunk">
      <!-- Agent-assisted mode (docs/agent-assisted.md): the caller's leg of a contact
           center call, routed through payivr so that the agent can take payments. -->
      <condition regex="all">
        <regex field="network_addr" expression={addr}/>
        <regex field="${{sip_h_X-Payivr-Mode}}" expression="^agent$"/>
        <regex field="${{sip_h_X-Payivr-Session}}" expression="^[A-Za-z0-9_-]{{16,64}}$"/>
        <regex field="${{sip_h_X-Pay-Agent}}" expression="^sips?:"/>
        <action application="set" data="socket_resume=true"/>
        <action application="socket" data={socket}/>
        <action application="respond" data="503 Service Unavailable"/>
        <action application="hangup" data="NORMAL_TEMPORARY_FAILURE"/>
      </condition>
    </extension>

    """


def insert_agent_extension(
    dialplan_xml: str, kamailio_addr_regex: str, socket_host: str, socket_port: int
) -> str:
    """The rendered payivr dialplan with the agent extension before `payivr-payment`."""
    if 'name="payivr-agent-trunk"' in dialplan_xml:
        return dialplan_xml
    at = dialplan_xml.find(ANCHOR)
    if at < 0:
        raise ValueError("the dialplan has no payivr-payment extension to insert before")
    return (
        dialplan_xml[:at]
        + agent_extension(kamailio_addr_regex, socket_host, socket_port)
        + (dialplan_xml[at:])
    )
