"""Benchmark: callback deliveries per second and result-to-delivery latency.

Everything local: a throw-away redis-server (AOF on, appendfsync everysec, as
shipped), a minimal asyncio HTTP/1.1 endpoint in its own process (keep-alive, answers
200 at once), and `payivr callbacks work` processes.

    .venv/bin/python bench/callbacks_throughput.py                 # defaults
    .venv/bin/python bench/callbacks_throughput.py --results 20000 --workers 2 --threads 16

Two phases:
  throughput: N results are recorded first (RedisSessionStore.record_result), then
              the workers start; deliveries/s = N / time until the last one arrives.
  latency:    with the workers running, results are recorded at a steady rate and
              the endpoint stamps each arrival; latency = arrival - record_result
              returning (same host, same clock). p50/p99 reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "pylib"), str(REPO)]

from payivr.store import keys  # noqa: E402
from payivr.store.connect import redis_from_url  # noqa: E402
from payivr.store.redis_store import RedisSessionStore  # noqa: E402
from tests.integration.store.storesupport import approved, make_session  # noqa: E402
from tests.support.servers import RedisServer, free_port, wait_for_tcp  # noqa: E402


# -- the endpoint (run in a child process: `callbacks_throughput.py --serve PORT OUT`) --
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


def record_one(store: RedisSessionStore, url: str, i: int) -> str:
    """Create a session and record an approved result for it: one outbox entry."""
    session = make_session(url, f"B{i:08d}")
    store.create(session)
    result = approved(session)
    store.record_result(session, result, datetime.now(UTC))
    return result.event_id


def write_config(tmp: Path, redis_url: str) -> Path:
    data = yaml.safe_load((REPO / "config" / "payivr.example.yaml").read_text())
    data["secrets_file"] = str(REPO / "config" / "secrets.example.yaml")
    data["services"]["redis"]["url"] = redis_url
    path = tmp / "payivr.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_workers(config: Path, n: int, threads: int, tmp: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "pylib")}
    procs = []
    for i in range(n):
        log = open(tmp / f"worker{i}.log", "wb")  # noqa: SIM115 (kept open for the child)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "payivr.cli",
                    "callbacks",
                    "work",
                    "--config",
                    str(config),
                    "--threads",
                    str(threads),
                    "--metrics-port",
                    "0",
                    "--consumer",
                    f"bench{i}",
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        )
    return procs


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(20)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--serve", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--results", type=int, default=10000, help="throughput phase size")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--threads", type=int, default=16, help="threads per worker")
    ap.add_argument("--latency-results", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0, help="results/s in the latency phase")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(int(args.serve[0]), Path(args.serve[1])))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="payivr-bench-"))
    (tmp / "redis").mkdir()
    server = RedisServer(workdir=tmp / "redis").start()
    port = free_port()
    arrivals_file = tmp / "arrivals.json"
    endpoint = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(arrivals_file)]
    )
    wait_for_tcp(port)
    url = f"http://127.0.0.1:{port}/cb"
    config = write_config(tmp, server.url)
    client = redis_from_url(server.url)
    store = RedisSessionStore(client)
    report: dict[str, object] = {
        "workers": args.workers,
        "threads": args.threads,
        "cpus": os.cpu_count(),
    }
    try:
        # Phase 1: throughput from a backlog.
        t0 = time.monotonic()
        for i in range(args.results):
            record_one(store, url, i)
        report["record_result_per_s"] = round(args.results / (time.monotonic() - t0))
        workers = start_workers(config, args.workers, args.threads, tmp)
        start = time.monotonic()
        first_seen = None
        while client.xlen(keys.OUTBOX) > 0:
            if first_seen is None and client.xlen(keys.OUTBOX) < args.results:
                first_seen = time.monotonic()
            time.sleep(0.01)
        end = time.monotonic()
        used = [cpu_seconds(w.pid) for w in workers]
        user, system = sum(u for u, _ in used), sum(s for _, s in used)
        report["worker_cpu_ms_per_delivery"] = {
            "user": round(user * 1000 / args.results, 3),
            "system": round(system * 1000 / args.results, 3),
        }
        report["deliveries_per_worker_cpu_second"] = round(args.results / (user + system))
        ep_user, ep_sys = cpu_seconds(endpoint.pid)
        report["endpoint_cpu_ms_per_delivery"] = round((ep_user + ep_sys) * 1000 / args.results, 3)
        # From the first delivery (excludes the workers' start-up) to the last.
        began = first_seen or start
        report["throughput_results"] = args.results
        report["deliveries_per_s"] = round(args.results / (end - began))
        report["deliveries_per_s_incl_startup"] = round(args.results / (end - start))

        # Phase 2: latency at a steady rate.
        recorded: dict[str, float] = {}
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        for i in range(args.latency_results):
            event_id = record_one(store, url, args.results + i)
            recorded[event_id] = time.time()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 60
        while client.xlen(keys.OUTBOX) > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop_all(workers)
    finally:
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(20)
        server.cleanup()
    arrivals = json.loads(arrivals_file.read_text())
    seen: dict[str, float] = {}
    for event_id, at in arrivals:
        seen.setdefault(event_id, at)
    latencies = [(seen[e] - t) * 1000 for e, t in recorded.items() if e in seen]
    report["delivered_total"] = len(seen)
    report["duplicates"] = len(arrivals) - len(seen)
    report["latency_results"] = len(latencies)
    report["latency_rate_per_s"] = args.rate
    report["latency_ms_p50"] = round(statistics.median(latencies), 2)
    report["latency_ms_p99"] = round(pct(latencies, 0.99), 2)
    report["latency_ms_max"] = round(max(latencies), 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
