"""payivr's systemd units have one source: the repository's freeswitch/*.service and
payivr.target. The Ansible role copies them unchanged and adds one drop-in per unit
with the host's paths; these tests hold the units to their hardening and check that
unit plus drop-in is what systemd accepts.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ansible.test_ansible import ANSIBLE_PLAYBOOK, REPO, VENV_BIN, _run, needs_ansible

UNITS_DIR = REPO / "freeswitch"
ROLE = REPO / "ansible" / "roles" / "payivr"
SERVICES = ("esl", "callbacks", "agent")

# Every payivr service: not root, no privilege gain, read-only file system but for
# its state directory, private /tmp, no core dumps (card data lives in memory), and
# restarted when it fails.
REQUIRED = {
    "User": "payivr",
    "Group": "payivr",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "-/var/lib/payivr",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectHome": "yes",
    "LimitCORE": "0",
    "UMask": "0077",
    "Restart": "on-failure",
}


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("name", SERVICES)
def test_repository_unit_is_hardened(name: str) -> None:
    unit = _unit(UNITS_DIR / f"payivr-{name}.service")
    service = dict(unit["Service"])
    assert {k: service.get(k) for k in REQUIRED} == REQUIRED
    assert service["ExecStart"].startswith(f"/opt/payivr/venv/bin/payivr {name} ")
    assert unit["Unit"]["PartOf"] == "payivr.target"
    assert unit["Install"]["WantedBy"] == "payivr.target"


def test_the_role_ships_no_units_of_its_own() -> None:
    """The role's services are exactly the repository's units, and it has no unit
    templates that could drift from them."""
    templates = {p.name for p in (ROLE / "templates").iterdir()}
    assert not any(".service" in t or ".target" in t for t in templates), templates
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert tuple(s["name"] for s in role_vars["payivr_services"]) == SERVICES
    assert sorted(p.name for p in UNITS_DIR.glob("payivr*.service")) == sorted(
        f"payivr-{name}.service" for name in SERVICES
    )
    services_tasks = (ROLE / "tasks" / "services.yml").read_text()
    assert "/freeswitch/payivr-{{ item.name }}.service" in services_tasks
    assert "/freeswitch/payivr.target" in services_tasks


RENDER_DROP_INS = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The role's variables
      ansible.builtin.include_role:
        name: payivr
        tasks_from: inventory_lists.yml
        public: true
    - name: Drop-in directories
      ansible.builtin.file:
        path: "{out}/payivr-{{{{ item.name }}}}.service.d"
        state: directory
        mode: "0755"
      loop: "{{{{ payivr_services }}}}"
    - name: The role's drop-ins
      ansible.builtin.template:
        src: {template}
        dest: "{out}/payivr-{{{{ item.name }}}}.service.d/host.conf"
        mode: "0644"
      loop: "{{{{ payivr_services }}}}"
"""


@needs_ansible
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_with_the_role_drop_ins_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert ANSIBLE_PLAYBOOK is not None
    out = tmp_path / "units"
    out.mkdir()
    for unit in [*(f"payivr-{n}.service" for n in SERVICES), "payivr.target"]:
        shutil.copy(UNITS_DIR / unit, out / unit)
    play = tmp_path / "drop-ins.yml"
    play.write_text(
        RENDER_DROP_INS.format(out=out, template=ROLE / "templates" / "unit-host.conf.j2")
    )
    # The venv of this test run stands in for the role's, so ExecStart exists.
    venv = VENV_BIN.parent
    proc = _run(
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            "localhost,",
            "-c",
            "local",
            str(play),
            "-e",
            f"ansible_python_interpreter={VENV_BIN / 'python'} payivr_venv={venv}",
        ],
        60,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for name in SERVICES:
        drop_in = (out / f"payivr-{name}.service.d" / "host.conf").read_text()
        assert f"ExecStart=\nExecStart={venv}/bin/payivr {name} " in drop_in
        assert "StandardOutput=append:/var/log/payivr/" in drop_in
    verify = subprocess.run(
        ["systemd-analyze", "verify", *(str(out / f"payivr-{n}.service") for n in SERVICES)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{out}:", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    # Any complaint (unknown key, bad value, missing command) is printed: none allowed.
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr


FREESWITCH_ROLE = REPO / "ansible" / "roles" / "freeswitch"
# The vendor's unit as freeswitch-systemd 1.10 ships it (the parts that matter here),
# with ExecStart on a command this machine has so that verify can check it.
VENDOR_FREESWITCH_UNIT = """\
[Unit]
Description=freeswitch
Wants=network-online.target
After=syslog.target network-online.target local-fs.target

[Service]
Type=forking
PIDFile=/run/freeswitch/freeswitch.pid
ExecStart=/bin/sleep infinity
TimeoutSec=45s
Restart=always
User=root
Group=daemon
LimitCORE=infinity
LimitNOFILE=100000
LimitNPROC=60000
LimitSTACK=250000
LimitRTPRIO=infinity
LimitRTTIME=infinity
IOSchedulingClass=realtime
IOSchedulingPriority=2
CPUSchedulingPolicy=rr
CPUSchedulingPriority=89
UMask=0007
NoNewPrivileges=false

[Install]
WantedBy=multi-user.target
"""

RENDER_FREESWITCH_DROP_INS = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The role's no-core-dump drop-in
      ansible.builtin.template:
        src: {role}/templates/no-core-dumps.conf.j2
        dest: {out}/freeswitch.service.d/payivr-no-core-dumps.conf
        mode: "0644"
    - name: The role's systemd-coredump drop-in
      ansible.builtin.template:
        src: {role}/templates/coredump.conf.j2
        dest: {out}/coredump.conf
        mode: "0644"
"""


def _effective(unit: Path, drop_ins: list[Path], key: str) -> str | None:
    """A [Service] setting as systemd reads it: the unit, then its drop-ins in order."""
    value = None
    for path in [unit, *sorted(drop_ins)]:
        service = _unit(path)
        if service.has_section("Service") and key in service["Service"]:
            value = service["Service"][key]
    return value


def test_the_freeswitch_role_installs_the_no_core_dump_drop_ins() -> None:
    tasks = yaml.safe_load((FREESWITCH_ROLE / "tasks" / "core_dumps.yml").read_text())
    destinations = {
        t["ansible.builtin.template"]["dest"]: t["ansible.builtin.template"]["src"]
        for t in tasks
        if "ansible.builtin.template" in t
    }
    assert destinations == {
        "/etc/systemd/system/freeswitch.service.d/payivr-no-core-dumps.conf": (
            "no-core-dumps.conf.j2"
        ),
        "/etc/systemd/coredump.conf.d/payivr.conf": "coredump.conf.j2",
    }
    main = yaml.safe_load((FREESWITCH_ROLE / "tasks" / "main.yml").read_text())
    names = [t["name"] for t in main]
    included = next(t for t in main if t.get("ansible.builtin.include_tasks") == "core_dumps.yml")
    assert included["when"] == "freeswitch_service_manager == 'systemd'"
    # Before the first start, so FreeSWITCH never runs with the vendor's limit.
    assert names.index(included["name"]) < names.index("Start FreeSWITCH")


@needs_ansible
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_vendor_freeswitch_unit_with_the_drop_in_dumps_no_core(tmp_path: Path) -> None:
    assert ANSIBLE_PLAYBOOK is not None
    out = tmp_path / "units"
    (out / "freeswitch.service.d").mkdir(parents=True)
    unit = out / "freeswitch.service"
    unit.write_text(VENDOR_FREESWITCH_UNIT)
    play = tmp_path / "drop-ins.yml"
    play.write_text(RENDER_FREESWITCH_DROP_INS.format(out=out, role=FREESWITCH_ROLE))
    proc = _run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(play),
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}"],
        60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    drop_ins = list((out / "freeswitch.service.d").glob("*.conf"))
    # The vendor says infinity; with the role's drop-in systemd applies 0.
    assert _effective(unit, [], "LimitCORE") == "infinity"
    assert _effective(unit, drop_ins, "LimitCORE") == "0"
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{out}:", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    # Any complaint (unknown key, bad value) is printed: none allowed.
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    # systemd-coredump (where the kernel pipes cores to it) keeps nothing.
    coredump = configparser.ConfigParser(interpolation=None)
    coredump.optionxform = str  # type: ignore[assignment,method-assign]
    coredump.read_string((out / "coredump.conf").read_text())
    assert dict(coredump["Coredump"]) == {"Storage": "none", "ProcessSizeMax": "0"}


def test_payivr_freeswitch_config_never_asks_for_core_dumps() -> None:
    # FreeSWITCH starts as root and raises its own limit for `dump-cores` (switch.conf)
    # or `-core`, whatever LimitCORE says: payivr's configuration must ask for neither.
    switch_conf = (
        REPO / "freeswitch" / "conf" / "autoload_configs" / "switch.conf.xml"
    ).read_text()
    assert "dump-cores" not in switch_conf
    assert "-core" not in VENDOR_FREESWITCH_UNIT
