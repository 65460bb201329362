"""bench/callbacks_throughput.py, tiny: it measures, loses nothing, cleans up after itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[3] / "bench" / "callbacks_throughput.py"


def run_bench(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    args = ["--results", "200", "--latency-results", "50", "--rate", "200", "--repeats", "1"]
    return subprocess.run(
        [sys.executable, str(BENCH), *args, "--baseline-ref", "none", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_bench_reports_ratios_and_removes_its_work_folder(tmp_path: Path) -> None:
    done = run_bench(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"config"')]
    worker = next(r for r in runs if r["config"] == "worker")
    assert worker["delivered"] == 250 and worker["lost"] == 0
    assert worker["per_s"] > 0 and worker["latency_ms_p99"] is not None
    assert any(r["config"] == "ceiling" and r["requests"] == 200 for r in runs)
    assert '"worker_per_s / endpoint_ceiling_per_s"' in done.stdout
    assert list(tmp_path.iterdir()) == []  # the ~40 MB work folder is gone


def test_bench_keeps_its_work_folder_with_keep(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--no-ceiling", "--keep")
    assert done.returncode == 0, done.stderr[-2000:]
    (kept,) = tmp_path.iterdir()
    assert kept.name.startswith("payivr-bench-callbacks-") and (kept / "worker0.log").exists()
