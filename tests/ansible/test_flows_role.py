"""The payivr role's call flows: the flows section of the config document."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ansible.test_ansible import ANSIBLE_PLAYBOOK, VENV_BIN, _run, needs_ansible

REPO = Path(__file__).resolve().parents[2]

PLAY = """\
- hosts: sip-edge1
  gather_facts: false
  tasks:
    - name: Build the lists from the inventory
      ansible.builtin.include_role:
        name: payivr
        tasks_from: inventory_lists.yml
        public: true
    - name: Write the flows section of the config document
      ansible.builtin.copy:
        content: "{{{{ payivr_config_document.flows | to_json }}}}"
        dest: {out}
        mode: "0600"
      delegate_to: localhost
"""


@needs_ansible
def test_flow_files_are_listed_in_the_flows_dir(tmp_path: Path) -> None:
    assert ANSIBLE_PLAYBOOK is not None
    out = tmp_path / "flows.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(out=out))
    extra = {
        "payivr_flow_files": [str(REPO / "flows" / "zendesk-caller-aware.yaml")],
        "payivr_flows": {
            "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
            "queues": {"support": {"agents": ["sip:agent1@10.0.0.20:5060"]}},
        },
        "vault_redis_password": "x", "vault_acme_signing": "y", "vault_acme_callback": "z",
    }  # fmt: skip
    proc = _run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/example/hosts.yml", str(play),
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}", "-e", json.dumps(extra)],
        60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    flows = json.loads(out.read_text())
    assert flows == {
        "entry_points": {"support": {"number": "8000", "flow": "zendesk-caller-aware"}},
        "queues": {"support": {"agents": ["sip:agent1@10.0.0.20:5060"]}},
        "files": ["/etc/payivr/flows/zendesk-caller-aware.yaml"],
    }
