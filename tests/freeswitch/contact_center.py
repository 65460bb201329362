"""A second FreeSWITCH as the contact center's user agent: SIP over TLS, SRTP.

Debian's SIPp has neither TLS nor SRTP and baresip 1.0 cannot add the X-Pay-
headers, so the test's caller is a FreeSWITCH of its own: a configuration written
here (one sofia profile, TLS only, with a client certificate; the event socket on
loopback), started by the test, driven over its event socket. It originates the
signed payment call with `sip_h_X-Pay-*` channel variables and keys the card with
`uuid_send_dtmf` (RFC 2833 events). Its media are SRTP, AES_CM_128_HMAC_SHA1_80
only (`rtp_secure_media_outbound=mandatory:...`).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from payivr.stack.ports import free_port, wait_for_tcp
from payivr.stack.processes import Managed, spawn, stop
from tests.freeswitch.inbound import InboundSocket
from tests.integration.tls.certs import CertAuthority

PROFILE = "cc"
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


def _params(values: Mapping[str, str | int]) -> str:
    return "\n".join(
        f"          <param name={quoteattr(k)} value={quoteattr(str(v))}/>"
        for k, v in values.items()
    )


def freeswitch_xml(
    *,
    sip_port: int,
    tls_port: int,
    cert_dir: Path,
    event_socket_port: int,
    password: str,
    rtp_ports: tuple[int, int],
) -> str:
    """The whole configuration of the contact center's FreeSWITCH."""
    modules = ["mod_console", "mod_event_socket", "mod_sofia", "mod_commands"]
    modules += ["mod_dptools", "mod_sndfile", "mod_dialplan_xml"]
    profile = {
        "context": "default",
        "dialplan": "XML",
        "sip-ip": "127.0.0.1",
        "rtp-ip": "127.0.0.1",
        "ext-sip-ip": "127.0.0.1",
        "ext-rtp-ip": "127.0.0.1",
        "sip-port": sip_port,
        "auth-calls": "false",
        "disable-register": "true",
        "manage-presence": "false",
        "user-agent-string": "contact-center-test",
        "inbound-codec-prefs": "PCMA",
        "outbound-codec-prefs": "PCMA",
        "dtmf-type": "rfc2833",
        "rfc2833-pt": "101",
        "rtp-timer-name": "soft",
        "tls": "true",
        "tls-only": "true",
        "tls-bind-params": "transport=tls",
        "tls-sip-port": tls_port,
        "tls-cert-dir": str(cert_dir),
        "tls-version": "tlsv1.2,tlsv1.3",
        # Kamailio's certificate is checked against the CA (cafile.pem), as a
        # contact center's trunk checks the IVR it pays through.
        "tls-verify-policy": "out",
    }
    return f"""<?xml version="1.0"?>
<document type="freeswitch/xml">
  <section name="configuration">
    <configuration name="switch.conf">
      <settings>
{
        _params(
            {
                "loglevel": "notice",
                "max-sessions": 10,
                "rtp-start-port": rtp_ports[0],
                "rtp-end-port": rtp_ports[1],
                "colorize-console": "false",
            }
        )
    }
      </settings>
    </configuration>
    <configuration name="modules.conf">
      <modules>
{chr(10).join(f'        <load module="{m}"/>' for m in modules)}
      </modules>
    </configuration>
    <configuration name="console.conf">
      <mappings><map name="all" value="console,notice,warning,err,crit,alert"/></mappings>
      <settings>
        <param name="colorize" value="false"/><param name="loglevel" value="notice"/>
      </settings>
    </configuration>
    <configuration name="event_socket.conf">
      <settings>
{_params({"listen-ip": "127.0.0.1", "listen-port": event_socket_port, "password": password})}
      </settings>
    </configuration>
    <configuration name="sofia.conf">
      <global_settings><param name="log-level" value="0"/></global_settings>
      <profiles>
        <profile name="{PROFILE}">
          <settings>
{_params(profile)}
          </settings>
        </profile>
      </profiles>
    </configuration>
  </section>
  <section name="dialplan">
    <context name="default">
      <extension name="no-incoming-calls">
        <condition><action application="hangup" data="CALL_REJECTED"/></condition>
      </extension>
    </context>
  </section>
</document>
"""


@dataclass
class ContactCenter:
    """The running contact-center FreeSWITCH."""

    process: Managed
    event_socket_port: int
    password: str
    tls_port: int
    rtp_ports: tuple[int, int]
    log: Path

    def api(self) -> InboundSocket:
        return InboundSocket(self.event_socket_port, self.password, timeout=30)


@contextmanager
def contact_center(
    binary: str, workdir: Path, ca: CertAuthority, rtp_ports: tuple[int, int]
) -> Iterator[ContactCenter]:
    """Start it (its certificate issued by `ca`, for client and server use: Kamailio
    opens TLS connections to it too), yield it, stop it."""
    base = workdir / "contact-center"
    cert_dir = base / "tls"
    cert_dir.mkdir(parents=True)
    issued = ca.issue("cti.test", server_and_client=True)
    # FreeSWITCH's layout: agent.pem is the certificate then its key; cafile.pem the CA.
    (cert_dir / "agent.pem").write_bytes(
        issued.certificate.read_bytes() + issued.private_key.read_bytes()
    )
    (cert_dir / "agent.pem").chmod(0o600)
    shutil.copyfile(ca.path, cert_dir / "cafile.pem")
    es_port, sip_port, tls_port = free_port(), free_port(), free_port()
    password = secrets.token_hex(12)
    conf = base / "conf"
    conf.mkdir()
    (conf / "freeswitch.xml").write_text(
        freeswitch_xml(
            sip_port=sip_port,
            tls_port=tls_port,
            cert_dir=cert_dir,
            event_socket_port=es_port,
            password=password,
            rtp_ports=rtp_ports,
        )
    )
    argv = [binary, "-nf", "-nc", "-nonat", "-conf", str(conf)]
    for name in ("log", "db", "run", "temp", "storage", "cache", "recordings", "certs"):
        (base / name).mkdir()
        argv += [f"-{name}", str(base / name)]
    log = base / "console.log"
    proc = spawn("contact-center-freeswitch", argv, log)
    try:
        for _ in range(300):  # 30 s
            if wait_for_tcp(es_port, 0.1):
                break
            if not proc.alive():
                raise RuntimeError("the contact center's FreeSWITCH exited:\n" + log.read_text())
        else:
            raise RuntimeError("the contact center's FreeSWITCH opened no event socket")
        yield ContactCenter(proc, es_port, password, tls_port, rtp_ports, log)
    finally:
        stop(proc)


def originate_command(
    call_uuid: str,
    call_id: str,
    kamailio_tls_port: int,
    headers: Mapping[str, str],
    audio: Path,
) -> str:
    """`originate` of the payment call over TLS to Kamailio, SRTP mandatory, the
    request headers as `sip_h_` variables, the caller playing `audio` in a loop."""
    variables = {
        "origination_uuid": call_uuid,
        "sip_invite_call_id": call_id,
        "rtp_secure_media_outbound": f"mandatory:{SRTP_SUITE}",
        "originate_timeout": "15",
        **{f"sip_h_{name}": value for name, value in headers.items()},
    }
    for name, value in variables.items():
        if any(c in value for c in " ,{}'\""):
            raise ValueError(f"{name}: {value!r} cannot go into an originate string")
    joined = ",".join(f"{k}={v}" for k, v in variables.items())
    target = f"sofia/{PROFILE}/sip:pay@127.0.0.1:{kamailio_tls_port};transport=tls"
    return f"originate {{{joined}}}{target} &endless_playback({audio})"
