"""Admission of calls to a flow's entry point (docs/flows.md): pure decisions."""

from __future__ import annotations

from typing import Any

from payivr.core.admission import NO_BODY, Accept, FlowCall, Reject, admit
from payivr.core.config import Config, parse_config
from tests.unit.helpers import NOW, SDP, signed_headers
from tests.unit.test_flow_config import ENV, EXAMPLE, config_doc


def flow_config(**flows: Any) -> Config:
    return parse_config(config_doc(**flows), base_dir=EXAMPLE.parent, environ=ENV)


CONFIG = flow_config(sources=["127.0.0.1/32"])


def decide(
    headers: list[tuple[str, str]],
    *,
    dialled: str = "8000",
    entry_headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
    body: Any = SDP,
    config: Config = CONFIG,
) -> Any:
    return admit(
        headers,
        call_id="call-1@trunk",
        source_ip=source,
        config=config,
        now=NOW,
        body=body,
        dialled=dialled,
        entry_headers=entry_headers,
    )


def test_number_dialled_is_a_flow_call() -> None:
    decision = decide([])
    assert isinstance(decision, FlowCall) and decision.entry.name == "support"


def test_trunk_header_names_the_entry_point_before_the_number() -> None:
    decision = decide([], dialled="9999", entry_headers={"x-payivr-entry": "partner"})
    assert isinstance(decision, FlowCall) and decision.entry.name == "partner"


def test_payment_headers_other_than_the_merchant_do_not_make_a_payment() -> None:
    decision = decide([("X-Pay-Order", "A1")])
    assert isinstance(decision, FlowCall)


def test_a_merchant_header_makes_it_a_payment_request_whatever_was_dialled() -> None:
    assert isinstance(decide(signed_headers(call_id="call-1@trunk")), Accept)


def test_unknown_number_keeps_the_missing_merchant_400() -> None:
    decision = decide([], dialled="9999", entry_headers={"x-payivr-entry": "other"})
    assert isinstance(decision, Reject)
    assert decision.rejection.status == 400
    assert decision.rejection.header == "X-Pay-Merchant"


def test_a_source_the_entry_point_does_not_allow_is_403() -> None:
    decision = decide([], source="198.51.100.9")
    assert isinstance(decision, Reject) and decision.rejection.status == 403
    assert "may not call entry point support" in str(decision.rejection)


def test_an_entry_points_own_sources_replace_the_global_ones() -> None:
    doc = config_doc(sources=["127.0.0.1/32"])
    doc["flows"]["entry_points"]["support"]["sources"] = ["198.51.100.0/24"]
    config = parse_config(doc, base_dir=EXAMPLE.parent, environ=ENV)
    assert isinstance(decide([], source="198.51.100.9", config=config), FlowCall)
    assert isinstance(decide([], source="127.0.0.1", config=config), Reject)
    partner = decide([], entry_headers={"x-payivr-entry": "partner"}, config=config)
    assert isinstance(partner, FlowCall)  # the global list still applies to the others


def test_a_flow_call_needs_its_sdp_offer() -> None:
    decision = decide([], body=NO_BODY)
    assert isinstance(decision, Reject) and decision.rejection.status == 488
