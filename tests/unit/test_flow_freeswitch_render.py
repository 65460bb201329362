"""The FreeSWITCH configuration of call flows: the payivr-flow extension, mod_fifo."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # our own rendered output, not untrusted input

from payivr.core.config import parse_config
from payivr.freeswitch.render import render_tree
from payivr.freeswitch.settings import freeswitch_settings
from tests.unit.test_flow_config import ENV, EXAMPLE, config_doc


def tree() -> dict[str, str]:
    doc = config_doc()
    doc["flows"]["queues"]["support"]["ring_timeout_s"] = 15
    config = parse_config(doc, base_dir=EXAMPLE.parent, environ=ENV)
    return render_tree(freeswitch_settings(config))


def test_flow_extension_before_the_payment_extension() -> None:
    dialplan = tree()["dialplan/payivr.xml"]
    assert dialplan.index('name="payivr-flow"') < dialplan.index('name="payivr-payment"')
    context = ET.fromstring(dialplan).find("context")  # noqa: S314
    assert context is not None
    flow = next(e for e in context.iter("extension") if e.get("name") == "payivr-flow")
    conditions = flow.findall("condition")
    assert conditions[0].get("field") == "network_addr"
    assert conditions[1].get("field") == "${sip_h_X-Payivr-Session}"
    assert conditions[1].get("expression") == "^$"
    regexes = {r.get("field"): r.get("expression") for r in conditions[2].iter("regex")}
    assert regexes == {"destination_number": "^(8000)$", "${sip_h_X-Payivr-Entry}": "^(partner)$"}
    actions = [(a.get("application"), a.get("data")) for a in conditions[2].iter("action")]
    assert actions == [
        ("set", "sensitive_dtmf=true"),
        ("socket", "127.0.0.1:8084 async full"),
        ("hangup", "NORMAL_TEMPORARY_FAILURE"),
    ]


def test_fifo_queue_with_its_agents_and_the_module() -> None:
    t = tree()
    fifo = ET.fromstring(t["autoload_configs/fifo.conf.xml"])  # noqa: S314
    queues = {q.get("name"): q for q in fifo.iter("fifo")}
    member = queues["support"].find("member")
    assert member is not None
    assert member.text == "{fifo_member_wait=nowait}sofia/payivr/sip:agent1@127.0.0.1:5090"
    assert member.get("timeout") == "15" and member.get("simo") == "1"
    modules = ET.fromstring(t["autoload_configs/modules.conf.xml"])  # noqa: S314
    assert "mod_fifo" in [m.get("module") for m in modules.iter("load")]


def test_no_flows_no_flow_extension() -> None:
    from payivr.core.config import load_config
    from tests.conftest import EXAMPLE_CONFIG

    dialplan = render_tree(freeswitch_settings(load_config(EXAMPLE_CONFIG)))["dialplan/payivr.xml"]
    assert "payivr-flow" not in dialplan
