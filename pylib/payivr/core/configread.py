"""Small helpers for reading a YAML document while collecting every problem with its path.

The config loader reads through a `Reader`: a wrong type, a missing key or an unknown
key adds `"<path>: <what is wrong>"` to a shared list and returns a safe default, so
validation goes on and the operator sees all problems at once.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_yaml_file(path: Path, error: Callable[[list[str]], Exception]) -> Any:
    """The YAML document in `path`; `error([problem])` is raised when it cannot be read
    or parsed (config files and flow files, which hold no secret values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error([f"{path}: not valid YAML: {exc}"]) from None


_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    dict: "a mapping",
    list: "a list",
}


class Secret:
    """A resolved secret value whose repr never shows it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def value(self) -> str:
        return self._value

    def encode(self) -> bytes:
        return self._value.encode("utf-8")

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"<Secret from {self.source}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        # compare_digest: the time taken does not tell how much of a secret matched.
        return isinstance(other, Secret) and hmac.compare_digest(other.encode(), self.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class Reader:
    """A view of one mapping in the document at a dotted path."""

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        self.data: Mapping[str, Any] = data if isinstance(data, dict) else {}
        self.path = path
        self.problems = problems

    # -- paths and problems -------------------------------------------------------
    def path_of(self, key: str) -> str:
        if not key:
            return self.path or "(top)"
        if key.startswith("["):
            return f"{self.path}{key}"
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path_of(key)}: {message}")

    # -- structure ----------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def keys(self) -> list[str]:
        return [str(k) for k in self.data]

    def items(self) -> Iterable[tuple[str, Any]]:
        return ((str(k), v) for k, v in self.data.items())

    def at(self, dotted: str) -> Reader:
        """The section at a dotted path below this one (`services.esl.return`)."""
        reader = self
        for key in dotted.split("."):
            reader = reader.section(key)
        return reader

    def section(self, key: str) -> Reader:
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            self.problem(key, "must be a mapping")
        return Reader(value, self.path_of(key), self.problems)

    def item(self, key: str, index: int, value: object) -> Reader:
        return Reader(value, f"{self.path_of(key)}[{index}]", self.problems)

    def reject_unknown(self, known: AbstractSet[str]) -> None:
        for key in self.data:
            if key not in known:
                self.problem(str(key), "unknown setting")

    # -- typed values -------------------------------------------------------------
    def get(
        self,
        key: str,
        kind: type[T],
        default: T,
        *,
        check: Callable[[T], bool] | None = None,
        what: str = "",
    ) -> T:
        if not self.has(key):
            return default
        value = self.data[key]
        # bool is an int in Python; a YAML `yes` must not pass as a port number.
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.problem(key, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
            return default
        if check is not None and not check(value):
            self.problem(key, f"must be {what}" if what else "invalid value")
            return default
        result: T = value
        return result

    def get_list(self, key: str, kind: type[T], default: list[T] | None = None) -> list[T]:
        if not self.has(key):
            return list(default or [])
        value = self.data[key]
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return list(default or [])
        out: list[T] = []
        for i, v in enumerate(value):
            if isinstance(v, kind) and not isinstance(v, bool):
                out.append(v)
            else:
                self.problem(f"{key}[{i}]", f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
        return out

    def networks(self, key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """A list of IP addresses or CIDR networks (source allowlists)."""
        out = []
        for i, src in enumerate(self.get_list(key, str)):
            try:
                out.append(ipaddress.ip_network(src, strict=False))
            except ValueError:
                self.problem(f"{key}[{i}]", "not an IP address or CIDR network")
        return tuple(out)

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        return self.get(
            key, str, default, check=lambda v: v in options, what="one of " + ", ".join(options)
        )

    def positive_int(self, key: str, default: int, maximum: int | None = None) -> int:
        what = "a positive integer" + (f" up to {maximum}" if maximum else "")
        return self.get(
            key,
            int,
            default,
            check=lambda v: v > 0 and (maximum is None or v <= maximum),
            what=what,
        )

    def non_negative_int(self, key: str, default: int) -> int:
        """An integer >= 0; a wrong type and a negative number get the same message."""
        value = self.data[key] if self.has(key) else default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.problem(key, "must be a non-negative integer")
            return default
        return value

    def int_range(self, key: str, default: int, low: int, high: int) -> int:
        """An integer from low to high (inclusive); otherwise one message for both."""
        value = self.data[key] if self.has(key) else default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"must be an integer from {low} to {high}")
            return default
        return value

    def positive_number(self, key: str, default: float) -> float:
        return self.get(key, float, default, check=lambda v: v > 0, what="a positive number")

    def port(self, key: str, default: int) -> int:
        return self.get(
            key, int, default, check=lambda v: 0 < v < 65536, what="a port number (1-65535)"
        )

    def host_port(self, index: int, value: str) -> tuple[str, int] | None:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.problem(f"nodes[{index}]", "must be host:port")
            return None
        return host, int(port)


class SecretResolver:
    """Resolves `env:NAME` and `file:KEY` references; inline secrets are refused."""

    def __init__(
        self,
        secrets_file: str | None,
        base_dir: Path,
        environ: Mapping[str, str],
        problems: list[str],
    ) -> None:
        self.environ = environ
        self.problems = problems
        self.file_path = (base_dir / secrets_file) if secrets_file else None
        self.values: dict[str, str] = {}
        if self.file_path is None:
            return
        try:
            loaded = yaml.safe_load(self.file_path.read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(f"secrets_file: cannot read {self.file_path}: {exc.strerror}")
            return
        except yaml.YAMLError:
            # The YAML error text may quote the file's content: never repeat it.
            problems.append(f"secrets_file: {self.file_path} is not valid YAML")
            return
        if not isinstance(loaded, dict):
            problems.append(f"secrets_file: {self.file_path} must be a mapping of names to values")
            return
        self.values = {str(k): str(v) for k, v in loaded.items() if v is not None}

    @staticmethod
    def is_reference(value: object) -> bool:
        return isinstance(value, str) and value.startswith(("env:", "file:"))

    def resolve(self, ref: str, path: str, *, required: bool = True) -> Secret:
        if not ref:
            if required:
                self.problems.append(f"{path}: required (a secret reference: env:NAME or file:KEY)")
            return Secret("", "nowhere")
        if ref.startswith("env:"):
            name = ref[4:]
            if name not in self.environ:
                self.problems.append(f"{path}: environment variable {name} is not set")
                return Secret("", ref)
            return Secret(self.environ[name], ref)
        if ref.startswith("file:"):
            key = ref[5:]
            if self.file_path is None:
                self.problems.append(f"{path}: {ref} needs secrets_file to be set")
                return Secret("", ref)
            if key not in self.values:
                self.problems.append(f"{path}: key {key!r} is not in the secrets file")
                return Secret("", ref)
            return Secret(self.values[key], ref)
        # Never echo the value: it may be a secret pasted in by mistake.
        self.problems.append(
            f"{path}: secrets are referenced, not written inline (use env:NAME or file:KEY)"
        )
        return Secret("", "inline")

    def resolve_if_reference(self, value: object, path: str) -> object:
        return (
            self.resolve(value, path)
            if isinstance(value, str) and self.is_reference(value)
            else value
        )
