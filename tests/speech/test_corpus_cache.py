"""The speech corpus cache under parallel test workers (tests/fixtures/speech/make_corpus.py).

Workers share build/speech-corpus: one builds it while the others wait for the lock,
and a reader never meets a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.speech.make_corpus import VERSION, write_atomically

REPO = Path(__file__).resolve().parents[2]
# A cached corpus of one item: corpus() returns it without building anything.
ITEM = {
    "language": "en",
    "voice": "espeak-ng-en-us-150",
    "noisy": False,
    "kind": "yesno",
    "card": -1,
    "chunk": 0,
    "digits": "1",
    "path": "en/espeak-ng-en-us-150/yesno--1-0.raw",
}
READER = (
    "import sys; from pathlib import Path;"
    " from tests.fixtures.speech.make_corpus import corpus;"
    " print(len(corpus(['en'], Path(sys.argv[1]))[1]))"
)


def test_a_worker_waits_for_the_one_building_the_corpus(tmp_path: Path) -> None:
    root = tmp_path / "speech-corpus"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"version": VERSION, "items": [ITEM]}))
    with (tmp_path / ".speech-corpus.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a worker building the corpus holds it
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(root)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        assert reader.poll() is None, "read the cache while another worker was building it"
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0 and out.strip() == "1"


def test_a_rewritten_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "item.raw"
    target.write_bytes(b"old")
    with target.open("rb") as reading:  # a reader that opened the file before the rewrite
        write_atomically(target, b"new audio")
        assert reading.read() == b"old"
    assert target.read_bytes() == b"new audio"
    assert [p.name for p in tmp_path.iterdir()] == ["item.raw"]
