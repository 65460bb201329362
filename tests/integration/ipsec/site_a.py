"""Site A of the IPsec test, run inside its network namespace by the test:

    ip netns exec <ns> python -m tests.integration.ipsec.site_a WORKDIR ADDRESS PEER

Starts Redis and a SIPp UAS (the FreeSWITCH node) on the namespace's own loopback and
real Kamailio on ADDRESS:5060 (the tunnel end) and on loopback (towards the node),
with merchant acme allowing PEER; writes WORKDIR/ready with the UAS log's path, and
stops everything when its stdin closes (the test ends or dies).
"""

from __future__ import annotations

import sys
from pathlib import Path

from payivr.core.config import load_config
from payivr.kamailio.runner import running_kamailio
from payivr.kamailio.settings import Socket
from tests.integration.kamailio.kamsupport import SippUas, write_config
from tests.support.servers import RedisServer, free_port

SIP_PORT = 5060


def main(workdir: Path, address: str, peer: str) -> int:
    (workdir / "redis").mkdir(exist_ok=True)
    redis = RedisServer(workdir=workdir / "redis").start()
    uas = SippUas("uas-freeswitch-answers", free_port(), workdir).start()
    try:
        path = write_config(workdir, redis_url=redis.url, nodes=[f"sip:127.0.0.1:{uas.port}"])
        path.write_text(
            path.read_text().replace(
                "    sources: [127.0.0.1/32]\n", f"    sources: [127.0.0.1/32, {peer}/32]\n", 1
            )
        )
        with running_kamailio(
            load_config(path),
            listen=(
                Socket("udp", address, SIP_PORT),
                Socket("udp", "127.0.0.1", free_port()),
            ),
            runtime_dir=workdir / "kamailio",
            children=2,
            ds_ping_interval_s=60,
        ):
            (workdir / "ready").write_text(str(uas.log_path))
            sys.stdin.read()  # until the test closes our stdin
    finally:
        uas.stop()
        redis.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
