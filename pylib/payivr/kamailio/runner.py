"""Run Kamailio from a payivr config: for development, the tests, the demo and operators.

`KamailioProcess` writes the generated files (payivr-local.cfg, dispatcher.list,
tls.cfg) into a runtime directory, starts `kamailio -f kamailio/kamailio.cfg` in the
foreground with that directory as its working directory (so kamailio.cfg's
`include_file "payivr-local.cfg"` finds them), waits until it answers OPTIONS, and
stops it again.

Kamailio starts with a clean environment: PATH, LANG, and only the variables the
config refers to as `env:NAME` secrets. Nothing of the caller's virtualenv
(VIRTUAL_ENV, PYTHONPATH, PYTHONHOME) reaches Kamailio's embedded interpreter, which
is Debian's /usr/bin/python3 as in production; the payivr package is found through
the PAYIVR_PYLIB define instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from payivr.core.config import Config
from payivr.kamailio.settings import KamailioSettings, Socket, write_files

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kamailio's TLSF allocator for shared and private memory. Debian's build defaults to
# q_malloc, whose allocations were 25% of payivr's Kamailio CPU and 40% of a native cfg
# route's; with TLSF both cost 30-40% less per call (docs/kamailio.md, Benchmark
# results). The Ansible role starts Kamailio with the same options.
MEMORY_MANAGER_ARGS = ("-x", "tlsf", "-X", "tlsf")
LOG_FILE = "kamailio.log"


def repo_kamailio_dir() -> Path:
    """kamailio/ of the checkout this package runs from (pylib/payivr/kamailio/..)."""
    return Path(__file__).resolve().parents[3] / "kamailio"


def package_root() -> Path:
    """The directory that holds the `payivr` package (for PAYIVR_PYLIB)."""
    return Path(__file__).resolve().parents[2]


def modules_dir() -> str:
    """Where Debian (multiarch) or a source build put Kamailio's modules."""
    candidates = [
        *sorted(glob.glob("/usr/lib/*/kamailio/modules")),
        "/usr/lib64/kamailio/modules",
        "/usr/lib/kamailio/modules",
        "/usr/local/lib64/kamailio/modules",
        "/usr/local/lib/kamailio/modules",
    ]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "app_python3.so")):
            return path
    raise RuntimeError(
        "Kamailio modules with app_python3 not found "
        "(apt-get install kamailio kamailio-python3-modules)"
    )


def env_references(node: object) -> set[str]:
    """Names of the environment variables the config reads (`env:NAME` values)."""
    found: set[str] = set()
    if isinstance(node, str) and node.startswith("env:"):
        found.add(node[4:])
    elif isinstance(node, Mapping):
        for value in node.values():
            found |= env_references(value)
    elif isinstance(node, list | tuple):
        for value in node:
            found |= env_references(value)
    return found


def clean_environment(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH, LANG and the config's `env:` secrets: nothing else reaches Kamailio."""
    source = os.environ if environ is None else environ
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
    for name in sorted(env_references(config.raw)):
        if name in source:
            env[name] = source[name]
    return env


def sip_options_ok(sock: Socket, timeout: float = 0.5) -> bool:
    """Does a SIP OPTIONS to this UDP/TCP socket get a 200 back?"""
    branch = "z9hG4bK" + secrets.token_hex(8)
    proto = "TCP" if sock.proto == "tcp" else "UDP"
    kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in sock.host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.settimeout(timeout)
        try:
            s.connect((sock.host, sock.port))
            local_host, local_port = s.getsockname()[:2]
            msg = (
                f"OPTIONS sip:{sock.host}:{sock.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/{proto} {local_host}:{local_port};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{local_host}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{sock.host}:{sock.port}>\r\n"
                f"Call-ID: probe-{secrets.token_hex(8)}@{local_host}\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            s.send(msg.encode())
            data = s.recv(4096)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


class KamailioProcess:
    """One Kamailio instance started from KamailioSettings (see module docstring)."""

    def __init__(
        self,
        settings: KamailioSettings,
        config: Config,
        *,
        kamailio_dir: Path | None = None,
        binary: str = "kamailio",
        shm_mb: int = 64,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.kamailio_dir = kamailio_dir or repo_kamailio_dir()
        self.binary = binary
        self.shm_mb = shm_mb
        self.environ = environ
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def runtime_dir(self) -> Path:
        return self.settings.runtime_dir

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / LOG_FILE

    def command(self) -> list[str]:
        exe = shutil.which(self.binary, path=CLEAN_PATH) or self.binary
        rt = str(self.runtime_dir)
        return [
            exe,
            "-f",
            str(self.kamailio_dir / "kamailio.cfg"),
            "-DD",
            "-E",  # foreground, log to stderr (the log file here)
            "-w",
            rt,
            "-Y",
            rt,
            "-P",
            str(self.runtime_dir / "kamailio.pid"),
            "-m",
            str(self.shm_mb),
            "-M",
            "16",
            *MEMORY_MANAGER_ARGS,
        ]

    def start(self, timeout: float = 15.0, *, foreground_log: bool = False) -> KamailioProcess:
        """Write the generated files, start Kamailio, wait until it answers OPTIONS."""
        if not (self.kamailio_dir / "kamailio.cfg").is_file():
            raise RuntimeError(
                f"{self.kamailio_dir}/kamailio.cfg not found: run from a checkout, or pass "
                "the directory holding kamailio.cfg and payivr_kemi.py (--kamailio-dir)"
            )
        write_files(self.settings, self.runtime_dir)
        log = None if foreground_log else open(self.log_path, "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.runtime_dir,
                env=clean_environment(self.config, self.environ),
                stdin=subprocess.DEVNULL,
                stdout=log or None,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        probe = next((s for s in self.settings.listen if s.proto in ("udp", "tcp")), None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"kamailio exited with {self.proc.returncode}:\n" + self.log_tail()
                )
            if probe is None or sip_options_ok(probe, timeout=0.3):
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"kamailio did not answer OPTIONS within {timeout}s:\n" + self.log_tail()
        )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pids(self) -> list[int]:
        """Kamailio's main process and all its workers (for CPU accounting)."""
        if self.proc is None:
            return []
        main = self.proc.pid
        found = [main]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == main:
                    found.append(int(stat.split("/")[2]))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by all Kamailio processes."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # Kamailio's main process stops its workers on SIGTERM.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def default_runtime_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="payivr-kamailio-"))


@contextlib.contextmanager
def running_kamailio(
    config: Config,
    *,
    listen: tuple[Socket, ...],
    runtime_dir: Path | None = None,
    **knobs: object,
) -> Iterator[KamailioProcess]:
    """Kamailio on the given sockets for the duration of a `with` block (tests, demo)."""
    rt = runtime_dir or default_runtime_dir()
    shm_mb = int(knobs.pop("shm_mb", 64))  # type: ignore[call-overload]
    kemi_script = Path(str(knobs.pop("kemi_script", repo_kamailio_dir() / "payivr_kemi.py")))
    settings = KamailioSettings.from_config(
        config,
        kemi_script=kemi_script,
        runtime_dir=rt,
        listen=listen,
        pylib=package_root(),
        modules_dir=modules_dir(),
        **knobs,
    )
    try:
        process = KamailioProcess(settings, config, shm_mb=shm_mb).start()
        try:
            yield process
        finally:
            process.stop()
    finally:
        if runtime_dir is None:  # ours: nothing in it is wanted afterwards
            shutil.rmtree(rt, ignore_errors=True)
