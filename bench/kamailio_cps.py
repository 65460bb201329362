"""Calls per second through Kamailio with full admission, and Kamailio's CPU per call.

    .venv/bin/python bench/kamailio_cps.py [--rates 1000,1500,2000] [--seconds 10]

Real Kamailio (payivr kamailio runner, the production kamailio.cfg and KEMI script),
real Redis, SIPp on loopback ports. Every call is a signed sale with its own Call-ID:
pike, signature and timestamp check, header validation, replay key + session hash +
`session.created` event in Redis, dispatcher relay to a SIPp UAS standing in for
FreeSWITCH, then ACK and BYE through the Record-Route. A rate counts only if every
call of it succeeded (SIPp saw 200 to INVITE and BYE) and Redis holds a session per
call. SIPp (caller and callee) shares the machine's cores with Kamailio and Redis.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.core.config import load_config  # noqa: E402
from payivr.kamailio.runner import running_kamailio  # noqa: E402
from payivr.kamailio.settings import Socket  # noqa: E402
from payivr.store import keys  # noqa: E402
from payivr.store.connect import redis_from_url  # noqa: E402
from tests.integration.kamailio.kamsupport import (  # noqa: E402
    Call,
    SippUas,
    sale_fields,
    signed,
    sipp_binary,
    write_config,
)
from tests.support.servers import RedisServer, free_port  # noqa: E402

SIPP = Path(__file__).resolve().parent / "sipp"
# The one key each admitted call leaves, whichever script admitted it: the full
# admission's session hash, the plain KEMI relay's hash (bench/plain_kemi_relay.py).
# Counting all keys instead depends on how many others each script writes.
CALL_KEY_PATTERNS = (keys.session_key("*"), "bench:plain:*")


def calls_recorded(client: object) -> int:
    """How many admitted calls Redis holds a key for."""
    return sum(
        1
        for pattern in CALL_KEY_PATTERNS
        for _key in client.scan_iter(match=pattern, count=1000)  # type: ignore[attr-defined]
    )


@dataclass
class Run:
    rate: int
    calls: int
    ok: int
    failed: int
    sessions: int
    seconds: float
    kamailio_cpu_s: float

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and self.sessions == self.calls

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.kamailio_cpu_s / max(self.ok, 1)


def injection(path: Path, prefix: str, count: int) -> None:
    """Signed sales for calls 1..count of a SIPp run with -cid_str <prefix>-%u@bench."""
    now = str(int(time.time()))
    rows = ["SEQUENTIAL"]
    for n in range(1, count + 1):
        cid = f"{prefix}-{n}@bench"
        fields = sale_fields(**{"X-Pay-Order": f"B{n}", "X-Pay-Timestamp": now})
        rows.append(Call.of(signed(fields, cid)).row())
    path.write_text("\n".join(rows) + "\n")


def counter(output: str, name: str) -> int:
    """A cumulative counter from SIPp's final statistics screen."""
    found = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(found[-1]) if found else -1


def run_rate(
    kam_port: int, kam: object, client: object, rate: int, seconds: int, workdir: Path
) -> Run:
    calls = rate * seconds
    prefix = secrets.token_hex(4)
    inf = workdir / f"calls-{rate}.csv"
    injection(inf, prefix, calls)
    before = calls_recorded(client)
    cpu0 = kam.cpu_seconds()  # type: ignore[attr-defined]
    started = time.monotonic()
    proc = subprocess.run(
        [
            sipp_binary(),
            f"127.0.0.1:{kam_port}",
            "-sf",
            str(SIPP / "uac-sale-fast.xml"),
            "-inf",
            str(inf),
            "-m",
            str(calls),
            "-r",
            str(rate),
            "-rp",
            "1000",
            "-l",
            str(rate * 4),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-t",
            "u1",
            "-nostdin",
            "-cid_str",
            f"{prefix}-%u@bench",
            "-timeout",
            f"{seconds * 3 + 30}s",
            "-timeout_error",
            "-max_recv_loops",
            "10000",
            "-max_sched_loops",
            "10000",
            "-trace_err",
            "-error_file",
            str(workdir / f"errors-{rate}.log"),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 60,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu = kam.cpu_seconds() - cpu0  # type: ignore[attr-defined]
    time.sleep(0.5)
    sessions = calls_recorded(client) - before
    out = proc.stdout
    return Run(
        rate,
        calls,
        counter(out, "Successful call"),
        counter(out, "Failed call"),
        sessions,
        elapsed,
        cpu,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        default="1000,1500,2000",
        help="offered call rates to try, calls/s (comma-separated)",
    )
    parser.add_argument("--seconds", type=int, default=8, help="length of each run")
    parser.add_argument("--children", type=int, default=4, help="Kamailio UDP workers")
    parser.add_argument(
        "--log-level",
        type=int,
        default=2,
        help="Kamailio debug level (2 = info: one line per accepted call)",
    )
    parser.add_argument(
        "--fr-timer-ms",
        type=int,
        default=2000,
        help="Kamailio's wait for a node's first answer (the production default is 2000)",
    )
    parser.add_argument(
        "--kemi-script",
        type=Path,
        default=REPO / "kamailio" / "payivr_kemi.py",
        help="the KEMI script to load (e.g. a profiling wrapper)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, SIPp errors)"
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="payivr-bench-kamailio-"))
    print(f"work directory (SIPp errors, Kamailio log; --keep keeps it): {workdir}", flush=True)
    (workdir / "redis").mkdir()
    redis_srv = RedisServer(workdir=workdir / "redis").start()
    uas = SippUas("uas-answers-fast", free_port(), workdir, scenario_dir=SIPP).start()
    runs: list[Run] = []
    try:
        config = load_config(
            write_config(
                workdir,
                redis_url=redis_srv.url,
                nodes=[f"sip:127.0.0.1:{uas.port}"],
                per_source=1_000_000,
                per_merchant=1_000_000,
            )
        )
        port = free_port()
        client = redis_from_url(redis_srv.url)
        with running_kamailio(
            config,
            listen=(Socket("udp", "127.0.0.1", port),),
            runtime_dir=workdir / "kamailio",
            children=args.children,
            log_level=args.log_level,
            shm_mb=256,
            kemi_script=args.kemi_script,
            fr_timer_ms=args.fr_timer_ms,
        ) as kam:
            for rate in (int(r) for r in args.rates.split(",")):
                load = os.getloadavg()[0]
                run = run_rate(port, kam, client, rate, args.seconds, workdir)
                runs.append(run)
                print(
                    f"offered {run.rate:5d}/s: {run.ok}/{run.calls} ok, {run.failed} failed, "
                    f"{run.sessions} sessions, {run.achieved:7.1f} calls/s, Kamailio CPU "
                    f"{run.cpu_ms_per_call:.3f} ms/call "
                    f"({100 * run.kamailio_cpu_s / run.seconds:.0f}% of one core); "
                    f"load average before {load:.1f} on {os.cpu_count()} cores",
                    flush=True,
                )
    finally:
        uas.stop()
        redis_srv.cleanup()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    clean = [r for r in runs if r.clean]
    if not clean:
        print("RESULT: no rate completed with 0 failed calls")
        return 1
    best = max(clean, key=lambda r: r.achieved)
    print(
        f"RESULT: {best.achieved:.0f} calls/s with 0 failed calls (offered {best.rate}/s, "
        f"{best.calls} calls), Kamailio CPU {best.cpu_ms_per_call:.3f} ms per call"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
