"""The ``flows:`` section of payivr's config: flow files, entry points, queues.

```yaml
flows:
  files: [../flows/zendesk-caller-aware.yaml]   # relative to the config file
  sources: [203.0.113.0/24]                     # trunks allowed to call entry points
  entry_points:
    support:                                    # the entry point's name (in events)
      number: "8000"                            # the number dialled (request URI user)
      flow: zendesk-caller-aware
      language: en                              # optional: the flow's own otherwise
    partner-line:
      header: {name: X-Payivr-Entry, value: partner}   # or a header the trunk sets
      flow: zendesk-caller-aware
      sources: [198.51.100.7]                   # this entry point's own (replaces the above)
  queues:
    support:                                    # a queue a flow's `queue` names
      agents: ["sip:agent1@10.0.0.20:5060"]     # rung by SIP URI, all at once
      ring_timeout_s: 20
```
Every flow file is validated here too (its problems carry the section's path and the
file's), against the config's merchants and connectors, and every queue a flow uses
must be configured: all before any socket opens.

Kamailio relays a call to an entry point only from its allowed sources (the trunk or
CTI addresses): an entry point's own `sources`, else `flows.sources`; an entry point
with neither is a config problem, so no IVR is left open to any address.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from payivr.core.config_types import Network, address_in
from payivr.core.configread import Reader
from payivr.core.flow.model import Flow
from payivr.core.flow.validator import FlowError, load_flow
from payivr.core.siputil import parse_sip_uri

ENTRY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
HEADER = re.compile(r"^X-[A-Za-z0-9-]{1,64}$")
QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ENTRY_HEADER_DEFAULT = "X-Payivr-Entry"


@dataclass(frozen=True)
class EntryPoint:
    name: str
    flow: str
    number: str | None = None
    header: tuple[str, str] | None = None  # (name, value)
    language: str = ""
    sources: tuple[Network, ...] = ()

    def source_allowed(self, address: str) -> bool:
        """May a call from this IP address (a trunk) reach this entry point?"""
        return address_in(address, self.sources)


@dataclass(frozen=True)
class QueueSettings:
    name: str
    agents: tuple[str, ...]
    ring_timeout_s: int = 20


@dataclass(frozen=True)
class FlowsConfig:
    flows: Mapping[str, Flow] = field(default_factory=dict)
    entry_points: tuple[EntryPoint, ...] = ()
    queues: Mapping[str, QueueSettings] = field(default_factory=dict)

    def header_names(self) -> frozenset[str]:
        """The trunk headers entry points are matched by (as configured)."""
        return frozenset(e.header[0] for e in self.entry_points if e.header is not None)

    def entry_for(self, dialled: str, headers: Mapping[str, str]) -> EntryPoint | None:
        """The entry point of a call: a matching header first (the trunk says which
        line it is), else the number dialled. ``headers`` by lower-case name."""
        for entry in self.entry_points:
            if entry.header is not None:
                name, value = entry.header
                if headers.get(name.lower()) == value:
                    return entry
        for entry in self.entry_points:
            if entry.number is not None and entry.number == dialled:
                return entry
        return None


def read_flows(
    s: Reader,
    base_dir: Path,
    *,
    merchants: Collection[str],
    connectors: Collection[str],
    languages: Collection[str],
) -> FlowsConfig:
    """The ``flows:`` section (problems go to the reader's list)."""
    flows: dict[str, Flow] = {}
    complete = True  # every file loaded: an unknown flow name is then a problem
    for i, name in enumerate(s.get_list("files", str)):
        path = (base_dir / name).resolve()
        where = s.path_of(f"files[{i}]")
        try:
            flow = load_flow(path, connectors=connectors, merchants=merchants)
        except FlowError as exc:
            s.problems.extend(f"{where} ({path}): {problem}" for problem in exc.problems)
            complete = False
            continue
        if flow.name in flows:
            s.problem(f"files[{i}]", f"a second flow named {flow.name!r}")
        flows[flow.name] = flow
    sources = s.networks("sources")
    entries = _entry_points(
        s.section("entry_points"), flows if complete else None, languages, sources
    )
    queues = _queues(s.section("queues"))
    for flow in flows.values():
        for activity in flow.activities.values():
            queue = getattr(activity, "queue", None)
            if isinstance(queue, str) and queue not in queues:
                s.problem(
                    "queues",
                    f"flow {flow.name} queues callers in {queue!r}: configure it here",
                )
    s.reject_unknown({"files", "sources", "entry_points", "queues"})
    return FlowsConfig(flows, entries, queues)


def _entry_points(
    s: Reader,
    flows: Mapping[str, Flow] | None,
    languages: Collection[str],
    default_sources: tuple[Network, ...],
) -> tuple[EntryPoint, ...]:
    out: list[EntryPoint] = []
    numbers: dict[str, str] = {}
    for name, _ in s.items():
        e = s.section(name)
        if not ENTRY_NAME.match(name):
            s.problem(name, "an entry point name is [a-z0-9_-], up to 32 characters")
        flow = e.get("flow", str, "")
        if not flow:
            e.problem("flow", "required (the name of a flow in flows.files)")
        elif flows is not None and flow not in flows:
            e.problem("flow", f"no flow {flow!r} in flows.files")
        number = e.get("number", str, "", check=_is_number, what="digits, optional +") or None
        header = None
        if e.has("header"):
            h = e.section("header")
            header_name = h.get(
                "name", str, ENTRY_HEADER_DEFAULT, check=_is_header, what="an X- header name"
            )
            value = h.get("value", str, "")
            if not value:
                h.problem("value", "required (the header's value for this entry point)")
            h.reject_unknown({"name", "value"})
            header = (header_name, value)
        if number is None and header is None:
            e.problem("", "needs a number or a header to be matched by")
        if number is not None:
            if number in numbers:
                e.problem("number", f"already the number of entry point {numbers[number]}")
            numbers[number] = name
        language = e.get("language", str, "")
        if language and language not in languages:
            e.problem("language", "one of " + ", ".join(languages))
        sources = e.networks("sources") if e.has("sources") else default_sources
        if not sources:
            e.problem(
                "sources",
                "required here or as flows.sources: the trunk addresses allowed to call it",
            )
        e.reject_unknown({"flow", "number", "header", "language", "sources"})
        out.append(EntryPoint(name, flow, number, header, language, sources))
    return tuple(out)


def _is_number(value: str) -> bool:
    return bool(NUMBER.match(value))


def _is_header(value: str) -> bool:
    return bool(HEADER.match(value))


def _queues(s: Reader) -> dict[str, QueueSettings]:
    out: dict[str, QueueSettings] = {}
    for name, _ in s.items():
        q = s.section(name)
        if not QUEUE_NAME.match(name):
            s.problem(name, "a queue name is [a-z0-9_-], up to 32 characters")
            continue
        agents = q.get_list("agents", str)
        for i, agent in enumerate(agents):
            uri = parse_sip_uri(agent, name_addr=False)
            if uri is None or not uri.user:
                q.problem(f"agents[{i}]", "a SIP URI like sip:agent1@10.0.0.20:5060")
        if not agents:
            q.problem("agents", "at least one agent SIP URI")
        out[name] = QueueSettings(name, tuple(agents), q.positive_int("ring_timeout_s", 20, 300))
        q.reject_unknown({"agents", "ring_timeout_s"})
    return out
