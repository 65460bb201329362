"""Detached processes of the local stack, recorded in `<workdir>/stack.json`.

`payivr stack up` starts each component in its own session (so a terminal's Ctrl-C
does not reach it and `stack down` can stop it with its children), records its pid
and command line, and returns. `payivr stack down` stops exactly those processes:
a pid is signalled only while /proc still shows the command line recorded for it,
so a recycled pid is never hit.

The process that started a component knows better than /proc: until it reaps its
child, that pid cannot be reused, and waitpid tells whether the child has ended and
how. /proc is no guide there: a child still inside execve (its close-on-exec fds
already closed, so Popen has returned) shows an empty command line, which once made
a slow start on a loaded host look like an exit and left the process running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STATE_FILE = "stack.json"


@dataclass
class Managed:
    """One process the stack started."""

    name: str
    pid: int
    argv: list[str]
    log: str
    # Set in the process that started it (not saved): liveness and exit code come from
    # waitpid on it, never from /proc (see the module doc).
    child: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, object]:
        """What stack.json keeps of it."""
        return {"name": self.name, "pid": self.pid, "argv": self.argv, "log": self.log}

    def exit_code(self) -> int | None:
        """How our child ended (negative: killed by that signal); None while it runs,
        and for a process started by another `payivr` (stack down reads stack.json)."""
        return self.child.poll() if self.child is not None else None

    def cmdline_matches(self) -> bool:
        try:
            raw = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # Some servers rewrite their title (redis-server shows "redis-server host:port"),
        # so the program's name is looked for in the first word, not compared whole.
        first = raw.split(b"\0")[0].decode(errors="replace").split(" ")[0]
        return Path(first).name == Path(self.argv[0]).name

    def alive(self) -> bool:
        if self.child is not None:
            return self.child.poll() is None  # also reaps it, so no zombie lingers
        if not self.cmdline_matches():
            return False
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class StackState:
    """What `stack up` left running, and where (read back by `stack down`)."""

    workdir: str
    config: str
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[Managed] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.workdir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        data = {
            "workdir": self.workdir,
            "config": self.config,
            "ports": self.ports,
            "processes": [p.record() for p in self.processes],
            "missing": self.missing,
        }
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, workdir: Path) -> StackState | None:
        try:
            data = json.loads((workdir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        procs = [Managed(**p) for p in data.pop("processes", [])]
        return cls(processes=procs, **data)


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Managed:
    """Start a detached process writing stdout+stderr to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Managed(name=name, pid=proc.pid, argv=list(argv), log=str(log), child=proc)


def stop(proc: Managed, timeout: float = 10.0) -> bool:
    """SIGTERM the process's group, then SIGKILL after `timeout`; True if it was running."""
    if not proc.alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.child.wait(5)
    return True
