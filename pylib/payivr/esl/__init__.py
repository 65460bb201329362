"""The ESL application: FreeSWITCH hands each payment call to it over an outbound socket.

codec       wire format, no I/O; card-data headers never become text
channel     the CallChannel interface the driver uses (replaceable ESL layer)
connection  the asyncio implementation of CallChannel
server      the outbound-socket server (one task per call)
executor    plan commands -> FreeSWITCH applications, results -> plan events
returning   the return of the call (SPEC 7): BYE headers, REFER, bridge
driver      one call: session, plan, processor, result, return
"""
