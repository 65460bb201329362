"""The payivr role's call flows: the flows section of the config document."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ansible.test_ansible import config_section, needs_ansible

REPO = Path(__file__).resolve().parents[2]


@needs_ansible
def test_flow_files_are_listed_in_the_flows_dir(tmp_path: Path) -> None:
    extra = {
        "payivr_flow_files": [str(REPO / "flows" / "zendesk-caller-aware.yaml")],
        "payivr_flows": {
            "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
            "queues": {"support": {"agents": ["sip:agent1@10.0.0.20:5060"]}},
        },
        "vault_redis_password": "x", "vault_acme_signing": "y", "vault_acme_callback": "z",
    }  # fmt: skip
    flows = config_section(
        tmp_path, "inventories/example/hosts.yml", "sip-edge1", "flows", "-e", json.dumps(extra)
    )
    assert flows == {
        "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
        "queues": {"support": {"agents": ["sip:agent1@10.0.0.20:5060"]}},
        "files": ["/etc/payivr/flows/zendesk-caller-aware.yaml"],
    }
