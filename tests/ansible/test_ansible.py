"""The Ansible deployment: lint, syntax check, and (in CI) a real converge.

- `ansible-lint` (production profile) and `ansible-playbook --syntax-check` always run
  when Ansible is installed; they need no host.
- The converge runs when PAYIVR_ANSIBLE_CONVERGE=1 or CI=true: ansible/ci-converge.sh
  deploys the CI inventory onto this machine (connection local, no init system,
  /opt/payivr-ci, ports 15060/16379/18084), converges a second time and requires
  zero changes; then SIPp proves the deployed Kamailio answers a malformed payment
  INVITE with 400 and relays a valid one to the dispatcher set built from the
  inventory (a SIPp UAS stands in for the FreeSWITCH node on 127.0.0.1:15080).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
# Ansible's commands: beside the running interpreter (the venv pytest runs in), or
# ANSIBLE_BIN_DIR, or on PATH.
VENV_BIN = Path(os.environ.get("ANSIBLE_BIN_DIR", str(Path(sys.executable).parent)))
CI_ROOT = Path("/opt/payivr-ci")
KAMAILIO_PORT = 15060
FREESWITCH_PORT = 15080
# The converge tests share one deployment (CI_ROOT, its fixed ports, the module-scoped
# fixtures that build it once). `make test` hands each test file to one pytest-xdist
# worker (--dist loadfile), so one suite converges once; this lock also keeps a second
# suite on the same machine (another worker tree, another developer) from converging
# the same root and ports meanwhile: it waits for the first to be done.
CONVERGE_LOCK = Path("/run/lock/payivr-ci-converge.lock")


def _tool(name: str) -> str | None:
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    return found


ANSIBLE_PLAYBOOK = _tool("ansible-playbook")
ANSIBLE_LINT = _tool("ansible-lint")
needs_ansible = pytest.mark.skipif(
    ANSIBLE_PLAYBOOK is None,
    reason="ansible-core is not installed (pip install ansible-core ansible-lint)",
)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return subprocess.run(
        cmd,
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@needs_ansible
@pytest.mark.parametrize("inventory", ["inventories/example/hosts.yml", "inventories/ci/hosts.yml"])
def test_site_playbook_passes_the_syntax_check(inventory: str) -> None:
    assert ANSIBLE_PLAYBOOK is not None
    proc = _run([ANSIBLE_PLAYBOOK, "-i", inventory, "site.yml", "--syntax-check"], 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(
    ANSIBLE_LINT is None, reason="ansible-lint is not installed (pip install ansible-lint)"
)
@pytest.mark.timeout(300)
def test_roles_and_playbook_pass_ansible_lint_production_profile() -> None:
    assert ANSIBLE_LINT is not None
    proc = _run([ANSIBLE_LINT, "--offline", "--profile", "production", "site.yml", "roles"], 280)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


@needs_ansible
def test_argument_specs_reject_bad_input_before_any_change(tmp_path: Path) -> None:
    """A wrong choice fails in the role's argument check, before the first task."""
    assert ANSIBLE_PLAYBOOK is not None
    play = tmp_path / "bad.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n"
        "    - role: redis\n      vars: {redis_mode: clustered}\n"
    )
    proc = _run(
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            "localhost,",
            "-c",
            "local",
            str(play),
            "-e",
            f"ansible_python_interpreter={VENV_BIN / 'python'}",
        ],
        60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "redis_mode" in out and "clustered" in out
    assert "Validating arguments against arg spec" in out
    assert "changed=0" in out


RENDER_PLAY = """\
- hosts: {host}
  gather_facts: false
  tasks:
    - name: Build the lists from the inventory
      ansible.builtin.include_role:
        name: payivr
        tasks_from: inventory_lists.yml
        public: true
    - name: Write one section of the config document
      ansible.builtin.copy:
        content: "{{{{ payivr_config_document.{section} | to_json }}}}"
        dest: {out}
        mode: "0600"
      delegate_to: localhost
"""


def _services_for(tmp_path: Path, inventory: Path | str, host: str, *extra: str) -> dict:
    return config_section(tmp_path, inventory, host, "services", *extra)


def config_section(
    tmp_path: Path, inventory: Path | str, host: str, section: str, *extra: str
) -> dict:
    """One section of the config document the payivr role renders for `host`."""
    assert ANSIBLE_PLAYBOOK is not None
    out = tmp_path / f"{host}-{section}.json"
    play = tmp_path / f"render-{host}-{section}.yml"
    play.write_text(RENDER_PLAY.format(host=host, section=section, out=out))
    proc = _run(
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            str(inventory),
            str(play),
            "-e",
            f"ansible_python_interpreter={VENV_BIN / 'python'}",
            *extra,
        ],
        60,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    rendered: dict = json.loads(out.read_text())
    return rendered


@needs_ansible
def test_dispatcher_set_and_sentinels_come_from_the_example_inventory(tmp_path: Path) -> None:
    services = _services_for(
        tmp_path,
        "inventories/example/hosts.yml",
        "sip-edge1",
        "-e",
        "vault_redis_password=x vault_acme_signing=y vault_acme_callback=z",
    )
    assert services["freeswitch_nodes"] == ["sip:10.10.0.31:5080", "sip:10.10.0.32:5080"]
    assert services["redis"]["sentinel"] == {
        "master": "payivr",
        "nodes": ["10.10.0.21:26379", "10.10.0.22:26379", "10.10.0.23:26379"],
    }
    assert services["redis"]["password"] == "file:redis_password"
    assert services["kamailio"]["listen"][0] == {"proto": "udp", "host": "10.10.0.11", "port": 5060}


@needs_ansible
def test_sentinel_password_of_the_redis_hosts_reaches_the_config(tmp_path: Path) -> None:
    """redis_sentinel_password (redis role) becomes services.redis.sentinel.password."""
    services = _services_for(
        tmp_path,
        "inventories/example/hosts.yml",
        "sip-edge1",
        "-e",
        "vault_redis_password=x vault_acme_signing=y vault_acme_callback=z",
        "-e",
        "redis_sentinel_password=sentinel-own",
    )
    assert services["redis"]["sentinel"]["password"] == "file:redis_sentinel_password"
    assert "sentinel-own" not in json.dumps(services)


@needs_ansible
def test_an_existing_redis_and_per_host_sip_ports_come_from_the_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n"
        "    payivr_redis:\n      hosts:\n        r1: {redis_mode: external, "
        "redis_external_host: 192.0.2.9, redis_external_port: 6390}\n"
        "    payivr_edge:\n      hosts:\n        e1: {ansible_host: 192.0.2.5}\n"
        "    payivr_media:\n      hosts:\n        m1: {ansible_host: 192.0.2.6}\n"
        "        m2: {ansible_host: 192.0.2.7, payivr_freeswitch_sip_port: 5090}\n"
    )
    services = _services_for(
        tmp_path, inventory, "e1", "-e", '{"payivr_merchants": {}, "payivr_secrets": {}}'
    )
    assert services["redis"] == {"url": "redis://192.0.2.9:6390/0"}
    assert services["freeswitch_nodes"] == ["sip:192.0.2.6:5080", "sip:192.0.2.7:5090"]


def _converge_enabled() -> bool:
    return os.environ.get("PAYIVR_ANSIBLE_CONVERGE") == "1" or os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def converged() -> Iterator[None]:
    if not _converge_enabled():
        pytest.skip("the local converge runs in CI or with PAYIVR_ANSIBLE_CONVERGE=1")
    if ANSIBLE_PLAYBOOK is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core ansible-lint)")
    if os.geteuid() != 0:
        pytest.skip("the local converge installs packages and users: it needs root")
    CONVERGE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CONVERGE_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the module's tests are done
        yield from _converge_and_stop()


def _converge_and_stop() -> Iterator[None]:
    try:
        proc = subprocess.run(
            [str(ANSIBLE_DIR / "ci-converge.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "ANSIBLE_BIN_DIR": str(VENV_BIN)},
        )
        print(proc.stdout)
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
        yield
    finally:
        # Stop what the converges started (by pid file), even after a failure.
        subprocess.run([str(ANSIBLE_DIR / "ci-converge.sh"), "--stop"], timeout=60, check=False)


@pytest.mark.timeout(660)
def test_converge_twice_changes_nothing_the_second_time(converged: None) -> None:
    log = (Path(f"{CI_ROOT}-logs") / "converge-2.log").read_text()
    recap = [line for line in log.splitlines() if line.startswith("ci-local")]
    assert recap and "changed=0" in recap[-1] and "failed=0" in recap[-1], recap


@pytest.mark.timeout(660)  # the converge runs in the fixture when this test runs alone
def test_secrets_file_is_not_world_readable(converged: None) -> None:
    secrets = CI_ROOT / "etc" / "secrets.yaml"
    mode = secrets.stat().st_mode & 0o777
    assert mode == 0o640, oct(mode)
    assert "ci-redis-password" in secrets.read_text()


@pytest.mark.integration
@pytest.mark.timeout(720)
def test_deployed_kamailio_rejects_malformed_and_relays_valid_invites(
    converged: None, tmp_path: Path
) -> None:
    from tests.integration.kamailio.kamsupport import (
        SippUas,
        call_id,
        new_prefix,
        run_uac,
        signed_sale,
    )
    from tests.support.servers import free_port

    uas = SippUas("uas-freeswitch-answers", FREESWITCH_PORT, tmp_path / "uas").start()
    try:
        prefix = new_prefix()
        bad = run_uac(
            "uac-bad-amount-expect-400",
            KAMAILIO_PORT,
            [signed_sale(call_id(prefix), **{"X-Pay-Amount": "12.50"})],
            tmp_path / "bad",
            prefix=prefix,
            local_port=free_port(),
        )
        assert bad.returncode == 0, bad.explain()
        # Kamailio probed 127.0.0.1:15080 while nothing answered there (during the
        # converge) and marked it inactive; it is active again after its next OPTIONS
        # probe finds the UAS (ds_ping_interval, 10 s).
        deadline = time.monotonic() + 40
        while True:
            prefix = new_prefix()
            good = run_uac(
                "uac-sale-expect-relayed",
                KAMAILIO_PORT,
                [signed_sale(call_id(prefix))],
                tmp_path / "good",
                prefix=prefix,
                local_port=free_port(),
            )
            if good.returncode == 0 or "no node available" not in good.errors:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        assert good.returncode == 0, good.explain()
        assert call_id(prefix) in uas.wait_for_calls(1)
    finally:
        uas.stop()


@pytest.fixture(scope="module")
def sentinel_converged(converged: None) -> Iterator[None]:
    """The redis role in Sentinel mode (inventories/ci-sentinel), converged twice."""
    proc = subprocess.run(
        [str(ANSIBLE_DIR / "ci-converge.sh"), "--sentinel"],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        env={**os.environ, "ANSIBLE_BIN_DIR": str(VENV_BIN)},
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    yield


@pytest.mark.integration
@pytest.mark.timeout(1200)
def test_role_deployed_sentinel_fails_over_and_a_rerun_keeps_the_new_primary(
    sentinel_converged: None, tmp_path: Path
) -> None:
    """payivr's client follows a failover of the Sentinel set the role deployed, and a
    later converge neither changes anything nor moves the primary back."""
    import redis

    from tests.ansible.test_sentinel_failover import assert_client_follows_failover

    assert_client_follows_failover(
        tmp_path,
        sentinel_port=16390,
        primary_port_=16381,
        replica_port=16382,
        master="payivr-ci",
        password="ci-sentinel-password",
        sentinel_password="ci-sentinel-own-password",
    )
    proc = _run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            "inventories/ci-sentinel/hosts.yml",
            "site.yml",
            "--tags",
            "redis",
        ],
        300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    counts = re.findall(r"changed=(\d+)", recap)
    assert counts and all(c == "0" for c in counts), recap
    sentinel = redis.Redis(
        host="127.0.0.1", port=16390, password="ci-sentinel-own-password", decode_responses=True
    )
    assert int(sentinel.sentinel_get_master_addr_by_name("payivr-ci")[1]) == 16382
