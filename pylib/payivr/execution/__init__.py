"""The one executor: runs a pure engine's commands on a call, for every driver.

The capture plan (payivr.core.plan) is a state machine that emits commands; the ESL
payment call, an agent-assisted payment and ``payivr simulate`` all run those
commands here, through one registry of command handlers (``registry.REGISTRY``), so
the processor's timeout, the wiping of card data, the handling of a hang-up and the
logging are the same for all of them. What differs per driver sits behind two small
interfaces: the ``Telephone`` (the caller's side: prompts, digits, recording masks)
and the ``DriverHooks`` (what the driver adds: agent-leg guard, progress, the result
on the BYE, the return of the call).

A new command is one handler module in ``handlers/`` plus one line in the registry.
"""
