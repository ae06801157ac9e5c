"""Faults on demand: which requests to disturb, and how.

A fault matches a request by service, method and path (the path below the
service prefix, e.g. `/models` for OpenAI, `/repos/acme/chatbot/actions/secrets/X`
for GitHub). The format is documented in `keyresponse.sandbox`'s docstring.
"""

from __future__ import annotations

import email.utils
import fnmatch
import json
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("latency", "status", "hang", "drop", "commit_then_fail", "commit_then_drop", "headers_then_reset",
         "commit_after_timeout", "rotate_public_key", "commit_then_garble")
SERVICES = ("openai", "github", "gitlab", "slack", "*")
DEFAULT_STATUS = {"status": 503, "commit_then_fail": 502}


@dataclass
class Fault:
    kind: str
    service: str = "*"
    method: str = "*"
    path: str = "*"
    status: int | None = None
    retry_after: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    count: int | None = None
    fraction: float = 1.0
    id: str = ""
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.service not in SERVICES:
            raise ValueError(f"fault service must be one of {', '.join(SERVICES)}, not {self.service!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fault fraction must be between 0 and 1")
        if self.count is not None and self.count < 1:
            raise ValueError("fault count must be >= 1 (or null for every call)")
        if self.status is None:
            self.status = DEFAULT_STATUS.get(self.kind)
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)
            if self.retry_after.lower() in ("", "none", "null"):
                self.retry_after = None
        self.method = self.method.upper()
        self.path = self.path or "*"
        self._methods = {m for m in re.split(r"[|,]", self.method) if m}
        self._regex = re.compile(self.path[3:]) if self.path.startswith("re:") else None

    def matches(self, service: str, method: str, paths: tuple[str, ...]) -> bool:
        if self.service not in ("*", service):
            return False
        if "*" not in self._methods and method not in self._methods:
            return False
        if self._regex is not None:
            return any(self._regex.fullmatch(p) for p in paths)
        return any(fnmatch.fnmatchcase(p, self.path) for p in paths)

    def delay(self, rng: random.Random) -> float:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def retry_after_header(self) -> str | None:
        """'date+N' means an HTTP date N seconds from now; anything else is sent as is."""
        value = self.retry_after
        if value and value.startswith("date+"):
            return email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
        return value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_TYPES = {"status": int, "count": int, "latency_ms": float, "jitter_ms": float, "fraction": float}
_NAMES = {f.name for f in fields(Fault)} - {"fired"}


def parse(spec: str | Mapping[str, Any]) -> Fault:
    """A Fault from a dict, a JSON object, or 'SERVICE:METHOD:PATH:KIND[:k=v,...]'."""
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        spec = json.loads(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - _NAMES
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in spec:
            raise ValueError("a fault needs a 'kind'")
        return Fault(**{k: _coerce(k, v) for k, v in spec.items()})
    parts = spec.split(":")
    kind_at = [i for i in range(3, len(parts)) if parts[i] in KINDS]
    if len(parts) < 4 or not kind_at:
        raise ValueError(f"fault {spec!r}: expected SERVICE:METHOD:PATH:KIND[:key=value,...]")
    i = kind_at[-1]
    options: dict[str, Any] = {}
    rest = ":".join(parts[i + 1 :])
    for item in re.split(r",(?=\s*\w+=)", rest) if rest else []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault option {item!r} is not key=value")
        options[name.strip()] = value.strip()
    return parse({"service": parts[0], "method": parts[1], "path": ":".join(parts[2:i]), "kind": parts[i], **options})


def _coerce(name: str, value: Any) -> Any:
    if value is None or name not in _FIELD_TYPES:
        return value
    if isinstance(value, str) and value.lower() in ("", "none", "null"):
        return None
    try:
        return _FIELD_TYPES[name](value)
    except (TypeError, ValueError):
        raise ValueError(f"fault field {name!r}: {value!r} is not a number") from None


class FaultSet:
    """The active faults. Safe to change from any thread."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._serial = 0
        self.rng = random.Random(seed)

    def add(self, spec: str | Mapping[str, Any] | Fault) -> Fault:
        fault = spec if isinstance(spec, Fault) else parse(spec)
        with self._lock:
            self._serial += 1
            fault.id = fault.id or f"fault-{self._serial}"
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take(self, service: str, method: str, paths: tuple[str, ...]) -> list[Fault]:
        """The faults that fire for this request; spends their counts."""
        if not self._faults:
            return []
        fired = []
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(service, method, paths):
                    continue
                if fault.fraction < 1.0 and self.rng.random() >= fault.fraction:
                    continue
                fault.fired += 1
                fired.append(fault)
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
        return fired
