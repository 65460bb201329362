#!/usr/bin/env python3
"""Fingerprint or pack the payivr source tree on the Ansible controller.

    payivr_source.py fingerprint SRC        print a sha256 over the package's files
    payivr_source.py pack SRC OUT.tar.gz    write those files to a gzip tarball

Only what `pip install` needs is included: pylib/ (without caches and build
metadata), setup.cfg, pyproject.toml and README.md when present. The fingerprint
covers paths and contents, not timestamps, so an unchanged checkout gives the same
value and the role installs nothing.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

TOP_FILES = ("setup.cfg", "pyproject.toml", "README.md")
SKIP_PARTS = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")


def package_files(src: Path) -> list[Path]:
    """The files pip needs, as paths relative to `src`, sorted."""
    files = [Path(name) for name in TOP_FILES if (src / name).is_file()]
    for path in (src / "pylib").rglob("*"):
        rel = path.relative_to(src)
        if not path.is_file() or path.suffix in SKIP_SUFFIXES:
            continue
        if any(part in SKIP_PARTS or part.endswith(".egg-info") for part in rel.parts):
            continue
        files.append(rel)
    return sorted(files)


def fingerprint(src: Path) -> str:
    digest = hashlib.sha256()
    for rel in package_files(src):
        digest.update(str(rel).encode() + b"\0")
        digest.update(hashlib.sha256((src / rel).read_bytes()).digest())
    return digest.hexdigest()


def pack(src: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for rel in package_files(src):
            tar.add(src / rel, arcname=str(rel), recursive=False)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "fingerprint":
        print(fingerprint(Path(argv[1])))
        return 0
    if len(argv) == 3 and argv[0] == "pack":
        pack(Path(argv[1]), Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
