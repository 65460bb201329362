"""`payivr check-config` checks the TLS certificate, key and CA a config names."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import yaml

from payivr.tls_files import check_tls_files
from tests.integration.tls.certs import NOW, CertAuthority
from tests.unit.helpers import EXAMPLE, example_data

WHERE = "services.kamailio.tls"


def test_a_good_certificate_key_and_ca_have_no_problem(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    leaf = ca.issue("sbc.test")
    assert check_tls_files(WHERE, str(leaf.certificate), str(leaf.private_key), str(ca.path)) == []


def test_expired_not_yet_valid_and_soon_expiring_are_named(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    day = datetime.timedelta(days=1)
    old = ca.issue("old.test", not_before=NOW - 30 * day, not_after=NOW - day)
    future = ca.issue("future.test", not_before=NOW + day)
    soon = ca.issue("soon.test", not_after=NOW + 3 * day)
    (expired,) = check_tls_files(WHERE, str(old.certificate), str(old.private_key))
    assert expired.startswith(f"{WHERE}.certificate: CN=old.test expired on ")
    (early,) = check_tls_files(WHERE, str(future.certificate), str(future.private_key))
    assert "CN=future.test is not valid before" in early
    (renew,) = check_tls_files(WHERE, str(soon.certificate), str(soon.private_key))
    assert "(renew within 14 days)" in renew


def test_a_key_of_another_certificate_is_a_mismatch(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    leaf = ca.issue("sbc.test")
    stray = ca.other_key("stray.key")
    (problem,) = check_tls_files(WHERE, str(leaf.certificate), str(stray))
    assert problem == (
        f"{WHERE}.private_key: {stray} is not the key of {leaf.certificate} (CN=sbc.test)"
    )


def test_a_certificate_from_another_ca_fails_the_chain(tmp_path: Path) -> None:
    ours, theirs = (
        CertAuthority(tmp_path / "a", "our CA"),
        CertAuthority(tmp_path / "b", "their CA"),
    )
    leaf = theirs.issue("sbc.test")
    (problem,) = check_tls_files(
        WHERE, str(leaf.certificate), str(leaf.private_key), str(ours.path)
    )
    assert problem == f"{WHERE}.certificate: CN=sbc.test is not issued by the CA in {ours.path}"


def test_unreadable_files_are_named_not_raised(tmp_path: Path) -> None:
    (problem,) = check_tls_files(WHERE, str(tmp_path / "none.crt"), str(tmp_path / "none.key"))
    assert problem.startswith(f"{WHERE}.certificate: {tmp_path / 'none.crt'}: cannot be read")


def test_check_config_fails_on_an_expired_certificate_and_a_foreign_key(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    day = datetime.timedelta(days=1)
    old = ca.issue("old.test", not_before=NOW - 9 * day, not_after=NOW - 2 * day)
    stray = ca.other_key("stray.key")
    data = example_data()
    data["services"]["kamailio"]["tls"] = {
        "enabled": True,
        "port": 5061,
        "certificate": str(old.certificate),
        "private_key": str(stray),
        "ca_certificate": str(ca.path),
        "mutual": True,
    }
    (tmp_path / "secrets.example.yaml").write_text(
        (EXAMPLE.parent / "secrets.example.yaml").read_text()
    )
    cfg = tmp_path / "payivr.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = subprocess.run(
        [sys.executable, "-m", "payivr.cli", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout
    assert "2 problem(s)" in out.stderr
    assert f"{WHERE}.certificate: CN=old.test expired on " in out.stderr
    assert f"{WHERE}.private_key: {stray} is not the key of {old.certificate}" in out.stderr
