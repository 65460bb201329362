"""`payivr stack up` / `stack down`: the whole local stack from one config.

Started in order, each waited for: Redis, (a hook: the demo's stand-in FreeSWITCH),
Kamailio, FreeSWITCH when one is found (FREESWITCH_BIN or `freeswitch` on PATH), the
ESL application, the callback worker. What could not be started is listed in
`StackState.missing` with the reason, and the stack runs without it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from payivr.stack.layout import StackLayout, prepare
from payivr.stack.ports import wait_for_listener, wait_for_tcp
from payivr.stack.processes import Managed, StackState, spawn, stop

FREESWITCH_HINT = (
    "FreeSWITCH 1.10 is not packaged in Debian. Production hosts get it from the "
    "vendor's repository (SignalWire, a personal access token) through the Ansible "
    "role `freeswitch`; here, point FREESWITCH_BIN at a freeswitch binary to include it."
)


class StackError(Exception):
    """A component failed to start; the message names it and points at its log."""


def find_freeswitch() -> str | None:
    """FREESWITCH_BIN, else `freeswitch` on PATH, else None."""
    explicit = os.environ.get("FREESWITCH_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("freeswitch")


def _payivr(*args: str) -> list[str]:
    # The same interpreter (and so the same installed payivr) as this process.
    return [sys.executable, "-m", "payivr.cli", *args]


def _log_tail(path: str, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start_redis(layout: StackLayout) -> Managed:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server not found (apt-get install redis-server)")
    data = layout.workdir / "redis"
    data.mkdir(exist_ok=True)
    proc = spawn(
        "redis",
        [
            binary,
            "--port",
            str(layout.ports["redis"]),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(data),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        layout.workdir / "logs" / "redis.log",
    )
    _wait_ready(proc, lambda: wait_for_tcp(layout.ports["redis"], 0.1), 10, "accept connections")
    return proc


def _start_kamailio(layout: StackLayout) -> Managed:
    try:
        from payivr.kamailio.runner import (
            KamailioProcess,
            modules_dir,
            package_root,
            repo_kamailio_dir,
        )
        from payivr.kamailio.settings import KamailioSettings
    except ImportError as exc:  # the Kamailio runner is another feature's module
        raise StackError(f"the Kamailio runner is not available ({exc})") from None
    config = layout.load()
    runtime = layout.workdir / "kamailio"
    runtime.mkdir(exist_ok=True)
    settings = KamailioSettings.from_config(
        config,
        kemi_script=repo_kamailio_dir() / "payivr_kemi.py",
        runtime_dir=runtime,
        pylib=package_root(),
        modules_dir=modules_dir(),
        ds_ping_interval_s=2,
        children=2,
        tcp_children=1,
    )
    process = KamailioProcess(settings, config)
    try:
        process.start(timeout=20)
    except (RuntimeError, TimeoutError) as exc:
        raise StackError(f"kamailio did not start: {exc}") from None
    if process.proc is None:
        raise StackError("kamailio did not start: no process")
    return Managed(
        "kamailio", process.proc.pid, process.command(), str(process.log_path), child=process.proc
    )


def _start_freeswitch(layout: StackLayout, binary: str) -> Managed:
    from payivr.freeswitch.render import render_tree, write_tree
    from payivr.freeswitch.settings import freeswitch_settings
    from payivr.prompts_build import build_prompts

    config = layout.load()
    settings = freeswitch_settings(config)
    build_prompts(settings.prompts_dir)
    base = layout.workdir / "freeswitch"
    conf = base / "conf"
    write_tree(render_tree(settings), conf)
    dirs = {
        name: base / name
        for name in ("log", "db", "run", "temp", "storage", "cache", "recordings", "certs")
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    argv = [binary, "-nf", "-nc", "-nonat", "-conf", str(conf)]
    for name, d in dirs.items():
        argv += [f"-{name}", str(d)]
    proc = spawn("freeswitch", argv, layout.workdir / "logs" / "freeswitch.log")
    port = layout.ports["event_socket"]
    _wait_ready(proc, lambda: wait_for_tcp(port, 0.1), 30, "open its event socket")
    return proc


def exit_reason(proc: Managed) -> str:
    """Why a started component is gone: its exit code or signal, and its log's tail."""
    code = proc.exit_code()
    if code is None:
        how = "exited"
    elif code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code}"
    tail = _log_tail(proc.log)
    detail = tail if tail.strip() else f"(its log {proc.log} is empty)"
    return f"{proc.name} {how} at start:\n{detail}"


def _wait_ready(proc: Managed, ready: Callable[[], bool], seconds: float, what: str) -> None:
    """Until `ready()`; StackError naming the cause if the process ends or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        if not proc.alive():
            raise StackError(exit_reason(proc))
    stop(proc)  # not in the stack's state yet, so nothing else would stop it
    raise StackError(f"{proc.name} did not {what} within {seconds:g} s:\n" + _log_tail(proc.log))


def _wait_listening(proc: Managed, port: int, seconds: float) -> bool:
    """Until the process listens on the port; False if it exits or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if wait_for_listener(port, 0.1):
            return True
        if not proc.alive():
            return False
    return False


def _wait_alive(proc: Managed, seconds: float) -> None:
    """Fail early if a service dies right after its start (bad config, missing module)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StackError(exit_reason(proc))
        time.sleep(0.05)


def stack_up(
    config: Path,
    workdir: Path,
    *,
    freeswitch: str | bool | None = True,
    configure: Callable[[StackLayout], None] | None = None,
    before_kamailio: Callable[[StackLayout], None] | None = None,
) -> StackState:
    """Bring the stack up (see module doc). `freeswitch=False` leaves FreeSWITCH out;
    a string is the binary to use; True finds one. `configure` may edit the stack's
    config (`layout.config_path`) before anything starts: what the loopback copy
    turns off (Kamailio's TLS listener, TLS nodes), a test turns back on there.
    On failure everything started is stopped again and StackError raised."""
    layout = prepare(config, workdir)
    if configure is not None:
        configure(layout)
        layout.load()  # the edited copy must still be valid
    state = StackState(
        workdir=str(layout.workdir), config=str(layout.config_path), ports=dict(layout.ports)
    )
    try:
        state.processes.append(_start_redis(layout))
        state.save()
        # FreeSWITCH before Kamailio: Kamailio's first OPTIONS probes then find the
        # node up. Started the other way round, the probes sent while FreeSWITCH was
        # loading marked the node down, and calls got "FreeSWITCH: no node available"
        # until the next probe round (ds_ping_interval, 10 s).
        binary = find_freeswitch() if freeswitch is True else (freeswitch or None)
        if binary:
            state.processes.append(_start_freeswitch(layout, binary))
        else:
            state.missing.append("freeswitch: not found. " + FREESWITCH_HINT)
        state.save()
        if before_kamailio is not None:
            before_kamailio(layout)
        state.processes.append(_start_kamailio(layout))
        state.save()
        if importlib.util.find_spec("payivr.commands.esl") is not None:
            esl = spawn(
                "esl",
                _payivr("esl", "serve", "--config", str(layout.config_path), "--metrics-port", "0"),
                layout.workdir / "logs" / "esl.log",
            )
            state.processes.append(esl)
            state.save()
            if not _wait_listening(esl, layout.ports["esl"], 10):
                tail = _log_tail(esl.log, 8)
                if binary:  # FreeSWITCH would send every call to the fallback
                    raise StackError("the ESL application did not listen:\n" + tail)
                # Without FreeSWITCH no call reaches it: run on, and say so.
                stop(esl)
                state.processes.remove(esl)
                state.missing.append(
                    f"esl: `payivr esl serve` did not start (log {esl.log}):\n" + tail
                )
                state.save()
        else:
            state.missing.append("esl: `payivr esl serve` is not in this checkout yet")
        worker = spawn(
            "callbacks",
            _payivr(
                "callbacks", "work", "--config", str(layout.config_path), "--metrics-port", "0"
            ),
            layout.workdir / "logs" / "callbacks.log",
        )
        state.processes.append(worker)
        state.save()
        _wait_alive(worker, 0.5)
    except BaseException:
        stack_down(layout.workdir, state)
        raise
    return state


def stack_down(workdir: Path, state: StackState | None = None) -> list[str]:
    """Stop what `stack up` started there, newest first; returns the names stopped."""
    state = state or StackState.load(workdir)
    if state is None:
        return []
    stopped = [p.name for p in reversed(state.processes) if stop(p)]
    state.processes = []
    state.save()
    return stopped
