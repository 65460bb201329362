"""The config's `flows:` section: flow files, entry points, queues, all validated."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from payivr.core.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "payivr.example.yaml"
ENV = {"ZD_TOKEN": "t0k"}


def config_doc(**flows: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    data["connectors"] = {
        "zendesk": {
            "base_url": "http://127.0.0.1:8089",
            "auth": {"kind": "zendesk", "email": "a@example.com", "api_token": "env:ZD_TOKEN"},
        }
    }
    data["flows"] = {
        "files": ["../flows/zendesk-caller-aware.yaml"],
        "sources": ["127.0.0.1/32"],
        "entry_points": {
            "support": {"number": "8000", "flow": "zendesk-caller-aware", "language": "es"},
            "partner": {"header": {"value": "partner"}, "flow": "zendesk-caller-aware"},
        },
        "queues": {"support": {"agents": ["sip:agent1@127.0.0.1:5090"]}},
        **flows,
    }
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=EXAMPLE.parent, environ=ENV)
    return info.value.problems


def test_flows_entry_points_and_queues() -> None:
    config = parse_config(config_doc(), base_dir=EXAMPLE.parent, environ=ENV)
    flows = config.flows
    assert set(flows.flows) == {"zendesk-caller-aware"}
    assert flows.queues["support"].agents == ("sip:agent1@127.0.0.1:5090",)
    support = flows.entry_for("8000", {})
    assert support is not None and support.name == "support" and support.language == "es"
    partner = flows.entry_for("8000", {"x-payivr-entry": "partner"})
    assert partner is not None and partner.name == "partner"  # the trunk's header first
    assert flows.entry_for("9999", {}) is None


def test_every_problem_with_its_path(tmp_path: Path) -> None:
    broken = yaml.safe_load((REPO / "flows" / "zendesk-caller-aware.yaml").read_text())
    broken["activities"]["greet"]["next"] = "nowhere"
    broken["activities"]["find_user"]["connector"] = "crm"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    data = config_doc(
        files=[str(tmp_path / "broken.yaml")],
        entry_points={
            "support": {"number": "80 00", "flow": "zendesk-caller-aware", "language": "fr"},
            "none": {"flow": "zendesk-caller-aware"},
        },
        queues={"sales": {"agents": ["agent1"]}},
    )
    found = problems(data)
    where = f"flows.files[0] ({tmp_path / 'broken.yaml'})"
    assert found == [
        f"{where}: activities.greet.next: no activity 'nowhere'",
        f"{where}: activities.find_user.connector: no connector 'crm' in the config's"
        " services.connectors",
        "flows.entry_points.support.number: must be digits, optional +",
        "flows.entry_points.support: needs a number or a header to be matched by",
        "flows.entry_points.support.language: one of es, en, pt, nl",
        "flows.entry_points.none: needs a number or a header to be matched by",
        "flows.queues.sales.agents[0]: a SIP URI like sip:agent1@10.0.0.20:5060",
    ]


def test_an_entry_point_names_a_flow_of_the_files() -> None:
    entry = {"number": "8000", "flow": "other"}
    found = problems(config_doc(entry_points={"support": entry}))
    assert found == ["flows.entry_points.support.flow: no flow 'other' in flows.files"]


def test_a_queue_the_flow_uses_must_be_configured() -> None:
    found = problems(config_doc(queues={}))
    assert found == [
        "flows.queues: flow zendesk-caller-aware queues callers in 'support': configure it here"
    ]


def test_a_pay_activity_names_a_configured_merchant(tmp_path: Path) -> None:
    flow = {
        "flow": "payme",
        "start": "p",
        "activities": {
            "p": {"type": "pay", "merchant": "nobody", "amount": "100", "order": "O1",
                  "next": "h"},
            "h": {"type": "hangup"},
        },
    }  # fmt: skip
    (tmp_path / "payme.yaml").write_text(yaml.safe_dump(flow))
    found = problems(config_doc(files=[str(tmp_path / "payme.yaml")], entry_points={}))
    assert found == [
        f"flows.files[0] ({tmp_path / 'payme.yaml'}): activities.p.merchant: no merchant"
        " 'nobody' in the config's merchants"
    ]


def test_check_config_names_the_flows_and_entry_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from payivr import cli

    data = config_doc()
    data["secrets_file"] = str(EXAMPLE.parent / data["secrets_file"])
    data["flows"]["files"] = [str(EXAMPLE.parent / "../flows/zendesk-caller-aware.yaml")]
    path = tmp_path / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ZD_TOKEN", "t0k")
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(
        "; 1 flow(s): zendesk-caller-aware (2 entry point(s): partner, support))"
    )


def test_every_entry_point_needs_sources_and_they_must_be_addresses() -> None:
    doc = config_doc()
    del doc["flows"]["sources"]
    doc["flows"]["entry_points"]["partner"]["sources"] = ["10.0.0.0/8", "trunk.example"]
    found = problems(doc)
    assert (
        "flows.entry_points.support.sources: required here or as flows.sources: "
        "the trunk addresses allowed to call it" in found
    )
    assert "flows.entry_points.partner.sources[1]: not an IP address or CIDR network" in found
    assert not any(p.startswith("flows.entry_points.partner.sources:") for p in found)


def test_the_example_configs_commented_flows_block_is_a_valid_config() -> None:
    text = EXAMPLE.read_text()
    block = text[text.index("# connectors:") :]
    uncommented = "\n".join(line[2:] for line in block.splitlines() if line.startswith("# "))
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(yaml.safe_load(uncommented))
    config = parse_config(data, base_dir=EXAMPLE.parent, environ={})
    assert set(config.connectors) == {"zendesk"}
    support = config.flows.entry_for("8000", {})
    assert support is not None and support.flow == "zendesk-caller-aware"
    assert support.source_allowed("127.0.0.1") and not support.source_allowed("192.0.2.1")
