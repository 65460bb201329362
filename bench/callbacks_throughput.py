"""Benchmark: callback deliveries per second and result-to-2xx latency, with baselines.

Everything local: a throw-away redis-server (AOF on, appendfsync everysec, as
shipped), a minimal asyncio HTTP/1.1 endpoint in its own process (keep-alive, answers
200 at once), and `payivr callbacks work` processes. Three configurations, run in
turn (alternating) `--repeats` times, each against a fresh endpoint and an empty Redis:

  ceiling   a load generator POSTs callback-sized requests straight at the endpoint
            (no Redis, no worker): the most the endpoint takes on this machine.
  worker    this checkout's worker (`--workers` processes, `--concurrency` each).
  baseline  the worker as of `--baseline-ref` (the last one on requests + threads),
            extracted from git into the work folder; `--baseline-ref none` skips it.

Each worker run has two phases:
  throughput: a backlog of `--results` outbox entries is written first, then the
              workers start; deliveries/s from the first delivery to the last.
  latency:    with the workers running, entries are written at a steady `--rate`
              (every 10 ms, a pipelined batch); the endpoint stamps each arrival;
              latency = arrival - the write returning (same host, same clock).

Entries are written with the outbox's own `Outbox.add` + `entry_fields` (the fields
`record_result` writes), pipelined, so that the writer is never the bound.

    .venv/bin/python bench/callbacks_throughput.py
    .venv/bin/python bench/callbacks_throughput.py --results 20000 --rate 3000 --repeats 3
    .venv/bin/python bench/callbacks_throughput.py --compare-clients   # CPU per POST only

Prints one JSON line per run, then medians and the ratios. The work folder (Redis
data, logs, the baseline's sources) is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.core.result import callback_body  # noqa: E402
from payivr.store import keys  # noqa: E402
from payivr.store.connect import redis_from_url  # noqa: E402
from payivr.store.outbox import Outbox, entry_fields, now_ms  # noqa: E402
from tests.integration.store.storesupport import approved, make_session  # noqa: E402
from tests.support.servers import RedisServer, free_port, wait_for_tcp  # noqa: E402

# The last worker on requests and a thread pool (the baseline of issue 13).
BASELINE_REF = "1f541b3"


# -- the endpoint (a child process: `callbacks_throughput.py --serve PORT OUT`) ---------
async def _serve(port: int, out: Path) -> None:
    arrivals: list[tuple[str, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, event_id = 0, ""
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    lname = name.strip().lower()
                    if lname == b"content-length":
                        length = int(value)
                    elif lname == b"x-payivr-event-id":
                        event_id = value.strip().decode()
                await reader.readexactly(length)
                arrivals.append((event_id, time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    out.write_text(json.dumps(arrivals))


# -- the load generator (`--loadgen PORT N CONNECTIONS BODY_BYTES OUT`) ------------------
async def _loadgen(port: int, total: int, connections: int, body_bytes: int, out: Path) -> None:
    """POST `total` requests over `connections` keep-alive connections, as fast as the
    endpoint answers; the cheapest client there is (a fixed request, a minimal reader)."""
    body = b"x" * body_bytes
    left = [total]
    latencies: list[float] = []

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while left[0] > 0:
            left[0] -= 1
            n += 1
            request = (
                b"POST /cb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nX-Payivr-Event-Id: load-%d-%d\r\n\r\n"
                % (len(body), id(writer), n)
            ) + body
            sent = time.monotonic()
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            latencies.append(time.monotonic() - sent)
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.monotonic() - started
    out.write_text(json.dumps({"elapsed_s": elapsed, "latencies": latencies}))


# -- HTTP clients compared (`--compare-clients`) -----------------------------------------
def compare_clients(tmp: Path, posts: int, body_bytes: int) -> list[dict[str, Any]]:
    """CPU per POST of each candidate client against the same endpoint, 32 in flight:
    the measurement behind the worker's choice of HTTP client (docs/callbacks.md)."""
    from urllib.parse import urlsplit

    from payivr.callbacks.client import CallbackClient, target_of

    body = b"x" * body_bytes
    endpoint = Endpoint(tmp, "clients")
    url = endpoint.url
    head = (
        b"POST /cb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nX-Payivr-Event-Id: evt_x\r\n\r\n" % len(body)
    )

    def timed(name: str, run: Any) -> dict[str, Any]:
        run(64)  # warm up: connections, imports
        started, cpu = time.monotonic(), time.process_time()
        run(posts)
        wall, used = time.monotonic() - started, time.process_time() - cpu
        return {
            "client": name,
            "per_s": round(posts / wall),
            "cpu_ms": round(used * 1000 / posts, 3),
        }

    def with_requests(n: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import requests

        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _i: session.post(url, data=body, timeout=10).content, range(n)))

    async def in_flight(n: int, post: Any) -> None:
        gate = asyncio.Semaphore(32)

        async def one() -> None:
            async with gate:
                await post()

        await asyncio.gather(*(one() for _ in range(n)))

    def with_aiohttp(n: int) -> None:
        import aiohttp

        async def go() -> None:
            jar = aiohttp.DummyCookieJar()
            async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=False) as session:

                async def post() -> None:
                    async with session.post(url, data=body, allow_redirects=False) as answer:
                        await answer.read()

                await in_flight(n, post)

        asyncio.run(go())

    def with_callback_client(n: int) -> None:
        async def go() -> None:
            client = CallbackClient(3.0, 10.0)
            to = target_of(urlsplit(url))

            async def post() -> None:
                await client.post(to, True, head, body)

            await in_flight(n, post)
            client.close()

        asyncio.run(go())

    try:
        return [
            timed("requests, 16 threads (the baseline worker's)", with_requests),
            timed("aiohttp, 32 in flight", with_aiohttp),
            timed("payivr CallbackClient, 32 in flight", with_callback_client),
        ]
    finally:
        endpoint.stop()


# -- helpers ----------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Entries:
    """Writes outbox entries as record_result would (the same fields), pipelined."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.outbox = Outbox(client)
        self.url = url
        self.body = callback_body(approved(make_session(url, "B00000001"))).decode()
        self.n = 0

    def write(self, count: int) -> list[str]:
        pipe = self.client.pipeline(transaction=False)
        at = now_ms()
        event_ids = []
        for _ in range(count):
            self.n += 1
            event_id = f"evt_bench{self.n:010d}"
            event_ids.append(event_id)
            self.outbox.add(
                entry_fields(
                    event_id=event_id,
                    session_id=f"s{self.n}",
                    merchant="acme",
                    url=self.url,
                    body=self.body,
                    result_at_ms=at,
                ),
                pipeline=pipe,
            )
        pipe.execute()
        return event_ids


def write_config(tmp: Path, redis_url: str) -> Path:
    data = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    data["secrets_file"] = str(REPO / "config" / "secrets.example.yaml")
    data["services"]["redis"]["url"] = redis_url
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def extract_baseline(ref: str, into: Path) -> Path:
    """`pylib/` as of `ref`, from git, into `into`; returns the pylib folder."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "pylib"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "pylib"


class Endpoint:
    def __init__(self, tmp: Path, name: str) -> None:
        self.port = free_port()
        self.arrivals_file = tmp / f"arrivals-{name}.json"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), str(self.arrivals_file)]
        )
        wait_for_tcp(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"

    def stop(self) -> list[tuple[str, float]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        arrivals: list[tuple[str, float]] = json.loads(self.arrivals_file.read_text())
        self.arrivals_file.unlink()
        return arrivals


def run_ceiling(tmp: Path, args: argparse.Namespace, body_bytes: int) -> dict[str, Any]:
    endpoint = Endpoint(tmp, "ceiling")
    out = tmp / "loadgen.json"
    cpu0 = cpu_seconds(endpoint.proc.pid)
    loadgen = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--loadgen",
            str(endpoint.port),
            str(args.results),
            str(args.concurrency),
            str(body_bytes),
            str(out),
        ]
    )
    loadgen.wait(600)
    ep_cpu = cpu_seconds(endpoint.proc.pid) - cpu0
    arrivals = endpoint.stop()
    stats = json.loads(out.read_text())
    out.unlink()
    lat = [x * 1000 for x in stats["latencies"]]
    return {
        "config": "ceiling",
        "requests": len(arrivals),
        "per_s": round(len(arrivals) / stats["elapsed_s"]),
        "endpoint_cpu_ms": round(ep_cpu * 1000 / max(len(arrivals), 1), 3),
        "request_ms_p50": round(statistics.median(lat), 2),
        "request_ms_p99": round(pct(lat, 0.99), 2),
    }


def start_workers(
    config: Path, args: argparse.Namespace, tmp: Path, baseline: Path | None
) -> list[subprocess.Popen[bytes]]:
    pylib = baseline if baseline is not None else REPO / "pylib"
    env = {**os.environ, "PYTHONPATH": str(pylib)}
    if baseline is not None:  # the old worker: a thread pool, 16 threads per process
        tuning = ["--threads", "16"]
    else:
        tuning = ["--concurrency", str(args.concurrency)]
    procs = []
    for i in range(args.workers):
        with open(tmp / f"worker{i}.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "payivr.cli", "callbacks", "work"),
                        *("--config", str(config), "--metrics-port", "0"),
                        *("--consumer", f"bench{i}", *tuning),
                    ],
                    env=env,
                    stdout=log,
                    stderr=log,
                    cwd=tmp,
                )
            )
    return procs


def run_worker(
    name: str,
    tmp: Path,
    args: argparse.Namespace,
    redis_server: RedisServer,
    config: Path,
    baseline: Path | None,
) -> dict[str, Any]:
    client = redis_from_url(redis_server.url)
    client.flushall()
    endpoint = Endpoint(tmp, name)
    entries = Entries(client, endpoint.url)
    report: dict[str, Any] = {"config": name}
    redis_pid = redis_server.proc.pid if redis_server.proc else 0
    workers: list[subprocess.Popen[bytes]] = []
    try:
        # Phase 1: throughput from a backlog.
        for start in range(0, args.results, 1000):
            entries.write(min(1000, args.results - start))
        ep_cpu0, redis_cpu0 = cpu_seconds(endpoint.proc.pid), cpu_seconds(redis_pid)
        workers = start_workers(config, args, tmp, baseline)
        started = time.monotonic()
        first_seen = None
        while client.xlen(keys.OUTBOX) > 0:
            if first_seen is None and client.xlen(keys.OUTBOX) < args.results:
                first_seen = time.monotonic()
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{name}: backlog not delivered in 10 minutes")
            time.sleep(0.005)
        end = time.monotonic()
        worker_cpu = sum(cpu_seconds(w.pid) for w in workers)
        n = args.results
        report["per_s"] = round(n / (end - (first_seen or started)))
        report["worker_cpu_ms"] = round(worker_cpu * 1000 / n, 3)  # incl. start-up
        # What one process would deliver with a core to itself: steadier than per_s
        # on a machine shared with other work.
        report["per_worker_cpu_s"] = round(n / worker_cpu)
        report["endpoint_cpu_ms"] = round((cpu_seconds(endpoint.proc.pid) - ep_cpu0) * 1000 / n, 3)
        report["redis_cpu_ms"] = round((cpu_seconds(redis_pid) - redis_cpu0) * 1000 / n, 3)

        # Phase 2: latency at a steady rate, a batch every 10 ms.
        steady_cpu0 = sum(cpu_seconds(w.pid) for w in workers)
        recorded: dict[str, float] = {}
        per_tick = max(1, round(args.rate / 100))
        ticks = max(1, args.latency_results // per_tick)
        next_at = time.monotonic()
        for _ in range(ticks):
            ids = entries.write(per_tick)
            at = time.time()
            for event_id in ids:
                recorded[event_id] = at
            next_at += 0.01
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 120
        while client.xlen(keys.OUTBOX) > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        steady_cpu = sum(cpu_seconds(w.pid) for w in workers) - steady_cpu0
        # Entries trickling in cost more than a backlog (smaller batches).
        report["steady_worker_cpu_ms"] = round(steady_cpu * 1000 / len(recorded), 3)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        arrivals = endpoint.stop()
    seen: dict[str, float] = {}
    for event_id, at in arrivals:
        seen.setdefault(event_id, at)
    latencies = [(seen[e] - t) * 1000 for e, t in recorded.items() if e in seen]
    report["delivered"] = len(seen)
    report["lost"] = entries.n - len(seen)
    report["duplicates"] = len(arrivals) - len(seen)
    report["latency_rate_per_s"] = per_tick * 100
    report["latency_ms_p50"] = round(statistics.median(latencies), 2) if latencies else None
    report["latency_ms_p99"] = round(pct(latencies, 0.99), 2) if latencies else None
    return report


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    medians: dict[str, dict[str, float]] = {}
    for config in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == config]
        medians[config] = {
            k: statistics.median(r[k] for r in mine)
            for k, v in mine[0].items()
            if isinstance(v, (int, float)) and all(r.get(k) is not None for r in mine)
        }
    return medians


def ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    worker, ceiling, base = (medians.get(k) for k in ("worker", "ceiling", "baseline"))
    if worker and ceiling:
        out["worker_per_s / endpoint_ceiling_per_s"] = round(worker["per_s"] / ceiling["per_s"], 2)
    if worker and base:
        out["worker_per_s / baseline_per_s"] = round(worker["per_s"] / base["per_s"], 2)
        out["baseline_cpu_ms / worker_cpu_ms"] = round(
            base["worker_cpu_ms"] / worker["worker_cpu_ms"], 2
        )
    if worker and ceiling:
        out["worker_cpu_ms / endpoint_cpu_ms"] = round(
            worker["worker_cpu_ms"] / ceiling["endpoint_cpu_ms"], 2
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--loadgen", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--results", type=int, default=15000, help="backlog per run")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--concurrency", type=int, default=64, help="deliveries in flight per worker")
    ap.add_argument("--latency-results", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=1000.0, help="entries/s in the latency phase")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the configurations")
    ap.add_argument(
        "--baseline-ref",
        default=BASELINE_REF,
        help=f"git ref of the baseline worker (default {BASELINE_REF}); 'none' skips it",
    )
    ap.add_argument("--no-ceiling", action="store_true", help="skip the endpoint's ceiling")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument(
        "--compare-clients",
        action="store_true",
        help="only compare the CPU per POST of requests, aiohttp and the worker's client",
    )
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(int(args.serve[0]), Path(args.serve[1])))
        return 0
    if args.loadgen:
        port, total, conns, size, out = args.loadgen
        asyncio.run(_loadgen(int(port), int(total), int(conns), int(size), Path(out)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="payivr-bench-callbacks-"))
    (tmp / "redis").mkdir()
    redis_server = RedisServer(workdir=tmp / "redis").start()
    runs: list[dict[str, Any]] = []
    try:
        config = write_config(tmp, redis_server.url)
        baseline = None
        if args.baseline_ref != "none":
            baseline = extract_baseline(args.baseline_ref, tmp / "baseline")
        body_bytes = len(Entries(redis_from_url(redis_server.url), "http://x/").body)
        print(
            f"# {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} CPUs, "
            f"{args.workers} worker process(es) x {args.concurrency} concurrent, "
            f"backlog {args.results}, latency at {args.rate:.0f}/s",
            flush=True,
        )
        if args.compare_clients:
            for _ in range(args.repeats):
                for line in compare_clients(tmp, args.results // 3, body_bytes):
                    print(json.dumps({**line, "load_before": f"{os.getloadavg()[0]:.2f}"}))
            return 0
        for _ in range(args.repeats):
            plan: list[tuple[str, Path | None]] = [("worker", None)]
            if baseline is not None:
                plan.append(("baseline", baseline))
            if not args.no_ceiling:
                plan.insert(0, ("ceiling", None))
            for name, base in plan:
                load = os.getloadavg()
                if name == "ceiling":
                    run = run_ceiling(tmp, args, body_bytes)
                else:
                    run = run_worker(name, tmp, args, redis_server, config, base)
                run["load_before"] = " ".join(f"{x:.2f}" for x in load)
                runs.append(run)
                print(json.dumps(run), flush=True)
    finally:
        redis_server.cleanup()
        if args.keep:
            print(f"work folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    medians = summarise(runs)
    print(json.dumps({"medians": medians, "ratios": ratios(medians)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
