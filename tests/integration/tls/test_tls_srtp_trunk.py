"""SIP over mutual TLS into real Kamailio, and the SRTP requirement at admission.

The contact center side is SIPp behind stunnel (Debian's SIPp has no TLS): stunnel
presents a client certificate issued by the test CA, as a merchant's trunk does with
`mutual: true`. A packet capture of Kamailio's TLS port shows no cleartext `X-Pay-`
header. A merchant with `require_srtp: true` admits the SDES offer and refuses a
plain RTP offer with 488 and a Warning naming the stream (SIPp over UDP).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from payivr.core.config import load_config
from payivr.kamailio.runner import KamailioProcess, modules_dir, running_kamailio
from payivr.kamailio.settings import Socket
from tests.integration.kamailio.conftest import require_kamailio_and_sipp
from tests.integration.kamailio.kamsupport import (
    SippUas,
    call_id,
    new_prefix,
    run_uac,
    signed_sale,
    write_config,
)
from tests.integration.tls.certs import CertAuthority, Issued
from tests.support.capture import loopback_capture
from tests.support.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


@dataclass
class TlsStack:
    kamailio: KamailioProcess
    udp_port: int
    tls_port: int
    node_port: int
    uas: SippUas
    ca: CertAuthority
    workdir: Path


@pytest.fixture(scope="module")
def tls_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsStack]:
    workdir = tmp_path_factory.mktemp("tls")
    ca = CertAuthority(workdir / "pki")
    with tls_stack_running(redis_server.url, workdir, ca, ca.issue("node.test")) as stack:
        yield stack


@contextlib.contextmanager
def tls_stack_running(
    redis_url: str, workdir: Path, ca: CertAuthority, node_cert: Issued
) -> Iterator[TlsStack]:
    """Kamailio (mutual TLS listener, UDP) relaying over TLS to a node presenting
    `node_cert`; merchant acme requires SRTP."""
    if not (Path(modules_dir()) / "tls.so").is_file():
        pytest.skip("Kamailio's tls module is needed (apt-get install kamailio-tls-modules)")
    require_kamailio_and_sipp()
    server = ca.issue("127.0.0.1")
    uas = SippUas("uas-freeswitch-answers", free_port(), workdir, extra=("-t", "t1")).start()
    node_port = free_port()
    path = write_config(
        workdir, redis_url=redis_url, nodes=[f"sip:127.0.0.1:{node_port};transport=tls"]
    )
    udp_port, tls_port = free_port(), free_port()
    text = path.read_text()
    text = text.replace(
        "    advertise_host: payivr.test\n",
        "    advertise_host: payivr.test\n"
        f"    tls: {{enabled: true, host: 127.0.0.1, port: {tls_port}, mutual: true, "
        f"certificate: {server.certificate}, private_key: {server.private_key}, "
        f"ca_certificate: {ca.path}}}\n",
    )
    # acme (the first merchant) requires SRTP on the caller's media
    text = text.replace(
        "    signing: {required: true, window_s: 300}\n",
        "    signing: {required: true, window_s: 300}\n    require_srtp: true\n",
        1,
    )
    path.write_text(text)
    config = load_config(path)
    assert config.merchants["acme"].require_srtp
    try:
        with (
            stunnel_server(workdir, node_port, uas.port, node_cert),
            running_kamailio(
                config,
                listen=(
                    Socket("udp", "127.0.0.1", udp_port),
                    Socket("tls", "127.0.0.1", tls_port),
                ),
                runtime_dir=workdir / "kamailio",
                children=2,
                ds_ping_interval_s=60,
            ) as kam,
        ):
            yield TlsStack(kam, udp_port, tls_port, node_port, uas, ca, workdir)
    finally:
        uas.stop()


def _stunnel() -> str:
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:
        pytest.skip("stunnel is needed to put SIPp on TLS (apt-get install stunnel4)")
    return binary


@contextlib.contextmanager
def _stunnel_running(conf: Path, lines: list[str], port: int) -> Iterator[int]:
    conf.write_text("\n".join(["foreground = yes", f"pid = {conf.with_suffix('.pid')}", *lines]))
    proc = subprocess.Popen(
        [_stunnel(), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@contextlib.contextmanager
def stunnel_server(workdir: Path, port: int, uas_port: int, cert: Issued) -> Iterator[int]:
    """The FreeSWITCH node's TLS side: stunnel (server mode, the node's certificate)
    in front of the SIPp UAS on TCP, as FreeSWITCH's TLS sofia profile would answer."""
    lines = [
        "[node]",
        f"accept = 127.0.0.1:{port}",
        f"connect = 127.0.0.1:{uas_port}",
        f"cert = {cert.certificate}",
        f"key = {cert.private_key}",
        "sslVersionMin = TLSv1.2",
    ]
    with _stunnel_running(workdir / f"stunnel-node-{port}.conf", lines, port) as p:
        yield p


@contextlib.contextmanager
def stunnel_client(stack: TlsStack, *, with_certificate: bool) -> Iterator[int]:
    """stunnel in client mode: plain TCP on the port yielded -> TLS to Kamailio."""
    port = free_port()
    lines = [
        "[cti]",
        "client = yes",
        f"accept = 127.0.0.1:{port}",
        f"connect = 127.0.0.1:{stack.tls_port}",
        f"CAfile = {stack.ca.path}",
        "verifyChain = yes",
        "checkIP = 127.0.0.1",
        "sslVersionMin = TLSv1.2",
    ]
    if with_certificate:
        client = stack.ca.issue("cti.test", client=True)
        lines += [f"cert = {client.certificate}", f"key = {client.private_key}"]
    with _stunnel_running(stack.workdir / f"stunnel-{port}.conf", lines, port) as p:
        yield p


def test_signed_srtp_invite_over_mutual_tls_is_relayed_and_never_in_clear(
    tls_stack: TlsStack,
) -> None:
    prefix = new_prefix()
    with (
        stunnel_client(tls_stack, with_certificate=True) as port,
        loopback_capture(
            f"tcp port {tls_stack.tls_port}", tls_stack.workdir / "trunk.pcap"
        ) as pcap,
        loopback_capture(
            f"tcp port {tls_stack.node_port}", tls_stack.workdir / "node.pcap"
        ) as node_pcap,
    ):
        result = run_uac(
            "uac-srtp-sale-expect-relayed",
            port,
            [signed_sale(call_id(prefix))],
            tls_stack.workdir,
            prefix=prefix,
            local_port=free_port(),
            extra=("-t", "t1"),
        )
    assert result.returncode == 0, result.explain()
    assert call_id(prefix) in tls_stack.uas.wait_for_calls(1, timeout=5)
    # both hops: contact center -> Kamailio, and Kamailio -> the node
    for leg in (pcap, node_pcap):
        wire = leg.path.read_bytes()
        assert len(wire) > 2000, leg.path  # the handshake and the call were captured
        assert b"\x17\x03\x03" in wire  # TLS application-data records
        for clear in (b"X-Pay-", b"X-Payivr-Session", b"INVITE sip:", b"a=crypto", prefix.encode()):
            assert clear not in wire, f"{clear!r} travelled in clear on {leg.path.name}"


def test_a_trunk_without_a_client_certificate_gets_no_tls_session(tls_stack: TlsStack) -> None:
    context = ssl.create_default_context(cafile=str(tls_stack.ca.path))
    with (
        socket.create_connection(("127.0.0.1", tls_stack.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # TLS 1.3 reports the server's refusal on the first read after the handshake.
        tls.sendall(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            data = tls.recv(4096)
            if not data:
                raise ConnectionResetError("closed without a reply")


def test_plain_rtp_to_a_merchant_requiring_srtp_is_488(tls_stack: TlsStack) -> None:
    prefix = new_prefix()
    result = run_uac(
        "uac-plain-rtp-expect-488",
        tls_stack.udp_port,
        [signed_sale(call_id(prefix))],
        tls_stack.workdir,
        prefix=prefix,
        local_port=free_port(),
    )
    assert result.returncode == 0, result.explain()
    assert "status=488 warning=" in result.log
    assert "requires SRTP: m=audio RTP/AVP is plain RTP" in result.log
    assert call_id(prefix) not in tls_stack.uas.sessions()


def test_a_node_whose_certificate_is_not_from_the_ca_gets_no_call(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ca = CertAuthority(tmp_path / "pki")
    stranger = CertAuthority(tmp_path / "other", "stranger CA").issue("node.test")
    with tls_stack_running(redis_server.url, tmp_path, ca, stranger) as stack:
        prefix = new_prefix()
        with stunnel_client(stack, with_certificate=True) as port:
            result = run_uac(
                "uac-srtp-sale-expect-relayed",
                port,
                [signed_sale(call_id(prefix))],
                stack.workdir,
                prefix=prefix,
                local_port=free_port(),
                extra=("-t", "t1"),
                timeout_s=8,
            )
        assert result.returncode != 0  # not relayed: Kamailio refused the node's certificate
        assert stack.uas.sessions() == {}
        assert "certificate verify failed" in stack.kamailio.log_text()
