"""The CTI trunk's TLS listener: enabled by config, answers SIP over TLS 1.2+."""

from __future__ import annotations

import secrets
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from payivr.core.config import load_config
from payivr.kamailio.runner import modules_dir, running_kamailio
from payivr.kamailio.settings import KamailioSettings, Socket
from tests.integration.kamailio.conftest import require_kamailio_and_sipp
from tests.integration.kamailio.kamsupport import write_config
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = directory / "kamailio.crt", directory / "kamailio.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=payivr.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def options_over_tls(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed test certificate
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="payivr.test") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        local = tls.getsockname()
        tls.sendall(
            (
                f"OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                f"From: <sips:probe@{local[0]}>;tag=1\r\nTo: <sips:127.0.0.1:{port}>\r\n"
                f"Call-ID: tls-{secrets.token_hex(6)}\r\nCSeq: 1 OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        return tls.recv(4096)


def test_tls_listener_from_config(tmp_path: Path, redis_url: str) -> None:
    if not (Path(modules_dir()) / "tls.so").is_file():
        pytest.skip("Kamailio's tls module is needed (apt-get install kamailio-tls-modules)")
    require_kamailio_and_sipp()
    cert, key = self_signed(tmp_path)
    path = write_config(tmp_path, redis_url=redis_url, nodes=["sip:127.0.0.1:5080"])
    tls_port = free_port()
    path.write_text(
        path.read_text().replace(
            "    advertise_host: payivr.test\n",
            "    advertise_host: payivr.test\n"
            f"    tls: {{enabled: true, host: 127.0.0.1, port: {tls_port}, "
            f"certificate: {cert}, private_key: {key}}}\n",
        )
    )
    config = load_config(path)
    udp = Socket("udp", "127.0.0.1", free_port())

    from_config = KamailioSettings.from_config(
        config, kemi_script=Path("k.py"), runtime_dir=tmp_path
    ).listen
    assert Socket("tls", "127.0.0.1", tls_port) in from_config  # enabled by the config
    with running_kamailio(
        config,
        listen=(udp, Socket("tls", "127.0.0.1", tls_port)),
        runtime_dir=tmp_path / "kamailio",
    ) as kam:
        assert (kam.runtime_dir / "tls.cfg").exists()
        assert options_over_tls(tls_port).startswith(b"SIP/2.0 200")
