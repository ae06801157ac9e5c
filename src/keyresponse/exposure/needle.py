"""What to look for: the exact leaked value, or the key's redacted prefix+suffix shape."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from keyresponse.secret import Secret, mask

_BODY = rb"[A-Za-z0-9_\-]"


def fingerprint(value: bytes) -> str:
    """A short, one-way name for a matched value: equal values, equal fingerprints."""
    return "sha256:" + hashlib.sha256(value).hexdigest()[:16]


@dataclass(frozen=True)
class Match:
    offset: int
    value: bytes  # stays in memory: only `masked` and `fingerprint` are written anywhere

    @property
    def masked(self) -> str:
        return mask(self.value.decode("utf-8", "replace"))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)


@dataclass(frozen=True, repr=False)
class Needle:
    """One thing to find. `label` is safe to print; the value never is."""

    label: str
    kind: str  # "value" (the leaked value itself) or "shape" (prefix...suffix of the redacted form)
    _exact: bytes | None = None
    _pattern: re.Pattern[bytes] | None = None

    def __repr__(self) -> str:
        return f"Needle({self.kind}, {self.label!r})"

    def matches(self, data: bytes) -> list[Match]:
        out: list[Match] = []
        if self._exact is not None:
            start = data.find(self._exact)
            while start >= 0:
                out.append(Match(start, self._exact))
                start = data.find(self._exact, start + len(self._exact))
        elif self._pattern is not None:
            out = [Match(m.start(), m.group(0)) for m in self._pattern.finditer(data)]
        return out

    def exact_bytes(self) -> bytes | None:
        """The exact value, for a search over many blobs at once (never to be printed)."""
        return self._exact

    def quick(self, data: bytes) -> bool:
        """A cheap first test (the whole blob): most blobs fail it."""
        if self._exact is not None:
            return self._exact in data
        assert self._pattern is not None
        return self._pattern.search(data) is not None


def from_secret(secret: Secret) -> Needle:
    return Needle(secret.masked, "value", _exact=secret.reveal().encode())


def from_redacted(redacted: str, min_body: int = 16) -> Needle | None:
    """`sk-proj-...wxyz` or `sk-proj-…wxyz`: any key-shaped token with that prefix and suffix.
    None when the form gives too little to go on (no prefix, or a suffix under 4 characters)."""
    parts = re.split(r"\.\.\.|…", redacted.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    prefix, suffix = parts
    if len(prefix) < 3 or len(suffix) < 4:
        return None
    pattern = re.compile(rb"(?<![A-Za-z0-9_\-])" + re.escape(prefix.encode()) + _BODY + b"{%d,}" % min_body
                         + re.escape(suffix.encode()) + rb"(?![A-Za-z0-9_\-])")
    return Needle(f"{prefix}…{suffix}", "shape", _pattern=pattern)


def line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:8000]
