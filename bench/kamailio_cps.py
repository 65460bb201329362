"""Calls per second through Kamailio: payivr's admission next to its two baselines.

    .venv/bin/python bench/kamailio_cps.py [--rates 1000,1500,2000] [--seconds 8]
        [--repeats 3] [--overload]

In one invocation, three Kamailio instances on loopback ports, each measured at each
offered rate, the routes alternating (native, plain, payivr for a rate, then the next
rate, the whole sweep `--repeats` times):

- native: bench/native/kamailio.cfg, no Python: the same header presence/format
  checks, timestamp window and HMAC signature in cfg, one Redis write (ndb_redis),
  dispatcher relay (needs Debian's kamailio-redis-modules);
- plain: bench/plain_kemi_relay.py, a KEMI Python relay with one redis-py write;
- payivr: the production kamailio.cfg and KEMI script, full admission (pike,
  signature, timestamp, headers, replay key + session + event + inflight in Redis).

Every call is a signed sale with its own Call-ID, relayed to a SIPp UAS standing in
for FreeSWITCH, then ACK and BYE through the Record-Route. A run is clean only if every
call succeeded and Redis holds one record per call. Per route it prints the highest
rate clean in a majority of the repeats, its median calls/s and median Kamailio CPU per
call (user + system of all its processes / calls), and the ratios to native.
`--overload` then offers payivr 1.5x and 2x its measured capacity with a caller that
accepts 503 and prints goodput and the 503 count. SIPp and Redis share the machine's
cores with Kamailio; `uptime`'s load is printed before each run.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.core.config import Config, load_config  # noqa: E402
from payivr.kamailio.runner import KamailioProcess, modules_dir, package_root  # noqa: E402
from payivr.kamailio.settings import KamailioSettings, Socket  # noqa: E402
from payivr.store import keys  # noqa: E402
from payivr.store.connect import redis_from_url  # noqa: E402
from tests.integration.kamailio.kamsupport import (  # noqa: E402
    SECRETS,
    Call,
    SippUas,
    sale_fields,
    signed,
    sipp_binary,
    write_config,
)
from tests.support.servers import RedisServer, free_port  # noqa: E402

BENCH = Path(__file__).resolve().parent
SIPP = BENCH / "sipp"
NATIVE_DIR = BENCH / "native"
SIGNATURE_WINDOW_S = 300  # write_config's acme merchant


@dataclass(frozen=True)
class Route:
    """One Kamailio under test: which cfg/KEMI script, and the Redis keys it writes per call."""

    name: str
    kemi_script: Path
    kamailio_dir: Path
    record_pattern: str


ROUTES = (
    Route("native", REPO / "kamailio" / "payivr_kemi.py", NATIVE_DIR, "payivr:native:*"),
    Route("plain", BENCH / "plain_kemi_relay.py", REPO / "kamailio", "bench:plain:*"),
    Route("payivr", REPO / "kamailio" / "payivr_kemi.py", REPO / "kamailio", keys.session_key("*")),
)
# The one key each admitted call leaves, whichever route admitted it. Counting all keys
# instead would depend on how many others each route writes (replay, inflight ...).
CALL_KEY_PATTERNS = tuple(route.record_pattern for route in ROUTES)


@dataclass
class Run:
    route: str
    rate: int
    calls: int
    ok: int
    failed: int
    shed: int  # answered 503 (only the overload caller accepts that)
    records: int
    seconds: float
    kamailio_cpu_s: float
    load: float

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.calls and self.records == self.calls

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.kamailio_cpu_s / max(self.ok, 1)

    def line(self) -> str:
        shed = f", {self.shed} answered 503" if self.shed else ""
        return (
            f"{self.route:>6} offered {self.rate:5d}/s: {self.ok}/{self.calls} ok, "
            f"{self.failed} failed{shed}, {self.records} records, {self.achieved:7.1f} calls/s, "
            f"Kamailio CPU {self.cpu_ms_per_call:.3f} ms/call "
            f"({100 * self.kamailio_cpu_s / self.seconds:.0f}% of one core); "
            f"load before {self.load:.2f}"
        )


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


def received_503(output: str) -> int:
    """How many 503s the caller received, from SIPp's final scenario screen."""
    found = re.findall(r"^\s*503 <-+\s+(\d+)", output, re.MULTILINE)
    return int(found[-1]) if found else 0


def calls_recorded(client: object, patterns: tuple[str, ...] = CALL_KEY_PATTERNS) -> int:
    """How many admitted calls Redis holds a key for (one key per call and route)."""
    return sum(
        1
        for pattern in patterns
        for _key in client.scan_iter(match=pattern, count=1000)  # type: ignore[attr-defined]
    )


def run_rate(
    route: Route,
    kam: KamailioProcess,
    port: int,
    client: object,
    rate: int,
    seconds: int,
    workdir: Path,
    scenario: str = "uac-sale-fast",
) -> Run:
    calls = rate * seconds
    prefix = secrets.token_hex(4)
    inf = workdir / "calls.csv"
    injection(inf, prefix, calls)
    load = os.getloadavg()[0]
    before = calls_recorded(client, (route.record_pattern,))
    cpu0 = kam.cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run(
        [
            sipp_binary(),
            f"127.0.0.1:{port}",
            "-sf",
            str(SIPP / f"{scenario}.xml"),
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
            str(workdir / f"errors-{route.name}-{rate}.log"),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 60,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu = kam.cpu_seconds() - cpu0
    time.sleep(0.5)
    records = calls_recorded(client, (route.record_pattern,)) - before
    out = proc.stdout
    shed = received_503(out)
    return Run(
        route.name,
        rate,
        calls,
        counter(out, "Successful call") - shed,
        counter(out, "Failed call"),
        shed,
        records,
        elapsed,
        cpu,
        load,
    )


@contextmanager
def kamailio_for(
    route: Route, config: Config, redis_port: int, workdir: Path, args: argparse.Namespace
) -> Iterator[tuple[KamailioProcess, int]]:
    port = free_port()
    runtime = workdir / f"kamailio-{route.name}"
    runtime.mkdir()
    settings = KamailioSettings.from_config(
        config,
        kemi_script=route.kemi_script,
        runtime_dir=runtime,
        listen=(Socket("udp", "127.0.0.1", port),),
        pylib=package_root(),
        modules_dir=modules_dir(),
        children=args.children,
        log_level=args.log_level,
        fr_timer_ms=args.fr_timer_ms,
    )
    if route.kamailio_dir == NATIVE_DIR:
        (runtime / "bench-native.cfg").write_text(
            f'#!define BENCH_REDIS_SERVER "name=bench;addr=127.0.0.1;port={redis_port}"\n'
            '#!define BENCH_MERCHANT "acme"\n'
            f'#!define BENCH_SIGNING_SECRET "{SECRETS["acme_signing"]}"\n'
            f"#!define BENCH_WINDOW_S {SIGNATURE_WINDOW_S}\n"
        )
    kam = KamailioProcess(settings, config, kamailio_dir=route.kamailio_dir, shm_mb=256).start()
    try:
        yield kam, port
    finally:
        kam.stop()


def capacity(runs: list[Run]) -> tuple[int, list[Run]] | None:
    """The highest offered rate clean in a majority of its repeats, and those runs."""
    rates = sorted({r.rate for r in runs}, reverse=True)
    for rate in rates:
        at = [r for r in runs if r.rate == rate]
        if sum(r.clean for r in at) * 2 > len(at):
            return rate, at
    return None


def summary(name: str, runs: list[Run]) -> tuple[float, float] | None:
    found = capacity(runs)
    if found is None:
        print(f"{name:>6}: no rate completed with 0 failed calls in a majority of runs")
        return None
    rate, at = found
    clean = [r for r in at if r.clean]
    cps = statistics.median(r.achieved for r in clean)
    cpu = statistics.median(r.cpu_ms_per_call for r in clean)
    print(
        f"{name:>6}: {cps:7.1f} calls/s at 0 failures (offered {rate}/s, clean in "
        f"{len(clean)} of {len(at)} runs), median Kamailio CPU {cpu:.3f} ms/call"
    )
    return cps, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="1000,1500,2000", help="offered call rates, calls/s (comma-separated)"
    )
    parser.add_argument("--seconds", type=int, default=8, help="length of each run")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps over all rates and routes")
    parser.add_argument(
        "--routes", default="native,plain,payivr", help="which routes (comma-separated)"
    )
    parser.add_argument(
        "--overload", action="store_true", help="then offer payivr 1.5x and 2x its capacity"
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=0,
        help="payivr's capacity for --overload if none is measured in this run",
    )
    parser.add_argument("--children", type=int, default=12, help="Kamailio UDP workers")
    parser.add_argument("--log-level", type=int, default=2, help="Kamailio debug level (2 = info)")
    parser.add_argument(
        "--fr-timer-ms",
        type=int,
        default=2000,
        help="Kamailio's wait for a node's first answer (the production default is 2000)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, SIPp errors)"
    )
    args = parser.parse_args(argv)
    wanted = args.routes.split(",")
    routes = [r for r in ROUTES if r.name in wanted]
    rates = [int(r) for r in args.rates.split(",")] if args.rates else []

    workdir = Path(tempfile.mkdtemp(prefix="payivr-bench-kamailio-"))
    print(f"work directory (removed at the end unless --keep): {workdir}", flush=True)
    (workdir / "redis").mkdir()
    runs: list[Run] = []
    overload: list[Run] = []
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        redis_srv = RedisServer(workdir=workdir / "redis").start()
        stack.callback(redis_srv.cleanup)
        uas = SippUas("uas-answers-fast", free_port(), workdir, scenario_dir=SIPP).start()
        stack.callback(uas.stop)
        config = load_config(
            write_config(
                workdir,
                redis_url=redis_srv.url,
                nodes=[f"sip:127.0.0.1:{uas.port}"],
                per_source=1_000_000,
                per_merchant=1_000_000,
            )
        )
        client = redis_from_url(redis_srv.url)
        kams = {
            r.name: stack.enter_context(kamailio_for(r, config, redis_srv.port, workdir, args))
            for r in routes
        }
        for _ in range(args.repeats):
            for rate in rates:
                for route in routes:
                    kam, port = kams[route.name]
                    run = run_rate(route, kam, port, client, rate, args.seconds, workdir)
                    runs.append(run)
                    print(run.line(), flush=True)
        print(
            f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
        )
        figures = {r.name: summary(r.name, [x for x in runs if x.route == r.name]) for r in routes}
        native = figures.get("native")
        for name in ("plain", "payivr"):
            mine = figures.get(name)
            if native and mine:
                print(
                    f"{name:>6} / native: {mine[0] / native[0]:.2f}x the calls/s, "
                    f"{mine[1] / native[1]:.2f}x the Kamailio CPU per call"
                )
        if args.overload and "payivr" in kams:
            found = capacity([x for x in runs if x.route == "payivr"])
            base = found[0] if found else args.capacity
            if not base:
                print("overload: no capacity measured (pass --capacity)")
                return 1
            route = next(r for r in routes if r.name == "payivr")
            kam, port = kams["payivr"]
            for factor in (1.5, 2.0):
                run = run_rate(
                    route,
                    kam,
                    port,
                    client,
                    int(base * factor),
                    args.seconds,
                    workdir,
                    scenario="uac-sale-or-503",
                )
                overload.append(run)
                print(
                    f"overload x{factor}: {run.line()}; goodput {run.achieved:.0f} calls/s = "
                    f"{100 * run.achieved / base:.0f}% of capacity {base}/s",
                    flush=True,
                )
    payivr = [x for x in runs if x.route == "payivr"]
    return 0 if (not payivr or capacity(payivr)) else 1


if __name__ == "__main__":
    sys.exit(main())
