"""Call flows (docs/flows.md): flow files as data, validated like the config, run by
a pure engine (events in, commands out) that the one executor drives.

- ``validator``: ``load_flow`` / ``parse_flow`` -> ``Flow`` or ``FlowError``
- ``engine``: ``FlowEngine(flow, CallInfo(...))`` with ``start()`` / ``handle(event)``
- ``activities``: one module per activity kind, registered in ``KINDS``
- ``commands`` / ``events``: what the engine asks for and what it is told
"""

from __future__ import annotations

from payivr.core.flow.engine import CallInfo, FlowEngine, FlowStuck, Phase
from payivr.core.flow.model import Flow
from payivr.core.flow.validator import FlowError, load_flow, parse_flow

__all__ = ["CallInfo", "Flow", "FlowEngine", "FlowError", "FlowStuck", "Phase", "load_flow",
           "parse_flow"]  # fmt: skip
