"""The masked secret type and the redactor every outbound text passes through.

A `Secret` holds a credential in memory. Its `str`, `repr`, format and pickle are a
mask such as ``sk-…wxyz``; `json.dumps` refuses it, and the JSON keyresponse writes
turns it into the mask (the journal as ``{"$secret": mask}``, the report through
`str`). The value is reachable only through `reveal()`, which the provider and
target code call at the moment they send it.
Every Secret made registers its value with the process-wide `REDACTOR`, which
replaces known values in any text keyresponse writes (console, logs, journal,
report, Slack) — the second guard, for values that escaped the type.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

MIN_REDACT_LEN = 8  # shorter strings are too likely to occur by chance


def mask(value: str) -> str:
    """``sk-proj-abc…wxyz`` style: a short prefix that names the kind, and the last 4."""
    if len(value) < 12:
        return "…" * 3
    prefix_match = re.match(r"^([A-Za-z]+[-_](?:[A-Za-z]+[-_])?)", value)
    prefix = prefix_match.group(1) if prefix_match and len(prefix_match.group(1)) <= 16 else ""
    return f"{prefix}…{value[-4:]}"


class Secret:
    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a Secret needs a non-empty string")
        self._value = value
        REDACTOR.add(value)

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        # Pickling gives the mask: a pickled Secret cannot carry the value anywhere.
        return (_unpickle_mask, (self.masked,))

    def __bool__(self) -> bool:
        return True


def _unpickle_mask(masked: str) -> str:
    return masked


class Redactor:
    """Replaces every registered secret value (and its URL-encoded form) with its mask."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < MIN_REDACT_LEN:
            return
        with self._lock:
            if value in self._values:
                return
            from urllib.parse import quote

            self._values[value] = mask(value)
            encoded = quote(value, safe="")
            if encoded != value:
                self._values[encoded] = mask(value)
            self._pattern = None

    def redact(self, text: str) -> str:
        if not self._values or not text:
            return text
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return pattern.sub(lambda m: self._values[m.group(0)], text)

    def redact_obj(self, obj: Any) -> Any:
        """Redact strings inside JSON-like data; Secrets become their mask."""
        if isinstance(obj, Secret):
            return obj.masked
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact(str(k)): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj

    def known(self) -> Iterable[str]:
        return tuple(self._values)


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def secret_from_env(name: str) -> Secret | None:
    value = os.environ.get(name)
    return Secret(value.strip()) if value and value.strip() else None


def secret_from_stdin() -> Secret:
    from keyresponse.errors import UsageError

    if sys.stdin is None or sys.stdin.closed:
        raise UsageError("expected the secret on standard input, but stdin is closed")
    value = sys.stdin.readline().strip()
    if not value:
        raise UsageError(
            "expected the secret on standard input, got nothing",
            hint="pipe it in: `pbpaste | keyresponse ...` or `keyresponse ... < file`",
        )
    return Secret(value)


def secret_from_file(path: str) -> Secret:
    from keyresponse.errors import UsageError

    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not value:
        raise UsageError(f"secret file {path} is empty")
    return Secret(value)
