"""Dotenv text, parsed and edited: pure functions on a file's text, no I/O.

`parse` finds every `NAME=value` with its spans; `edit` sets variables by changing
only each value's span, so every other byte stays — other lines, the line's
`export`, spacing, quoting style (kept when it can hold the new value), inline
comment and line ending — and returns a redacted diff alongside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyresponse.secret import mask

_EOL = r"(?:\r\n|\n|\r|\Z)"
_SKIP = re.compile(r"[ \t]*(?:#[^\r\n]*)?" + _EOL)
_HEAD = re.compile(r"(?P<lead>[ \t]*)(?P<export>export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*")
_QUOTED = {"'": re.compile(r"'((?:\\'|[^'])*)'", re.S), '"': re.compile(r'"((?:\\.|[^"\\])*)"', re.S)}
_TAIL = re.compile(r"[ \t]*(?:#[^\r\n]*)?" + _EOL)
_SAFE_BARE = re.compile(r"[A-Za-z0-9_\-.:/+=@%,~^]+")
_DQ_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "'": "'"}


class EnvParseError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Binding:
    name: str
    line: int  # 1-based line of the name
    start: int  # offset of the line's first character
    vstart: int  # value span: quotes included, comment and line end excluded
    vend: int
    quote: str  # "'", '"', "" (bare value) or "=" (a bare name, no `=` at all)
    raw: str  # the value as written, quotes included

    @property
    def value(self) -> str | None:
        if self.quote == "=":
            return None
        if self.quote == "'":
            return self.raw[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if self.quote == '"':
            return re.sub(r"\\(.)", lambda m: _DQ_ESCAPES.get(m.group(1), m.group(0)), self.raw[1:-1], flags=re.S)
        return self.raw


def parse(text: str) -> list[Binding]:
    """Every `NAME=value` in a dotenv text, with spans; EnvParseError names the bad line."""
    if text.startswith("\ufeff"):  # envfile.py keeps a file's BOM and parses what follows it
        raise EnvParseError(1, "the text starts with a byte-order mark (U+FEFF, a BOM): "
                               "not part of the first line's NAME")
    out: list[Binding] = []
    pos, n = 0, len(text)
    while pos < n:
        line = text.count("\n", 0, pos) + 1 if "\n" in text else text.count("\r", 0, pos) + 1
        m = _SKIP.match(text, pos)
        if m and m.end() > pos:
            pos = m.end()
            continue
        head = _HEAD.match(text, pos)
        if not head:
            raise EnvParseError(line, "expected NAME=value, a comment or a blank line")
        name, p = head.group("name"), head.end()
        if not text.startswith("=", p):
            tail = _TAIL.match(text, p)
            if tail is None or (tail.end() == p and p < n):
                raise EnvParseError(line, f"expected '=' after {name}")
            out.append(Binding(name, line, pos, p, p, "=", ""))
            pos = tail.end()
            continue
        p += 1
        while p < n and text[p] in " \t":
            p += 1
        q = text[p] if p < n else ""
        if q in _QUOTED:
            vm = _QUOTED[q].match(text, p)
            if vm is None:
                raise EnvParseError(line, f"{name}: the {q} quote is never closed")
            vend = vm.end()
            tail = _TAIL.match(text, vend)
            if tail is None:
                raise EnvParseError(line, f"{name}: unexpected text after the closing quote")
        else:
            q = ""
            eol = re.compile(r"[^\r\n]*").match(text, p).end()  # type: ignore[union-attr]
            comment = re.compile(r"[ \t]#").search(text, p, eol)
            vend = p + len(text[p:comment.start() if comment else eol].rstrip(" \t"))
            tail = _TAIL.match(text, vend)
            assert tail is not None  # the rest of a line always matches
        out.append(Binding(name, line, pos, p, vend, q, text[p:vend]))
        pos = tail.end()
    return out


def encode(value: str, quote: str) -> str:
    """The value as written with the quoting style the line already uses, when that
    style can hold it; else double quotes (which can hold anything)."""
    if quote in ("", "=") and _SAFE_BARE.fullmatch(value):
        return value
    if not re.search(r"['\\\r\n]", value) and (quote == "'" or "$" in value):
        return f"'{value}'"  # single quotes also stop dotenv readers expanding `${...}`
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def edit(text: str, values: dict[str, str], *, create: bool = True) -> tuple[str, list[str]]:
    """`text` with each variable set; and a redacted diff, one line per change."""
    bindings = parse(text)
    diff: list[str] = []
    for b in sorted((b for b in bindings if b.name in values), key=lambda b: b.vstart, reverse=True):
        new = ("=" if b.quote == "=" else "") + encode(values[b.name], b.quote)
        old_shown = _shown(text, b.start, b.vstart, b.vend, b.raw, b.value)
        text = text[: b.vstart] + new + text[b.vend :]
        new_shown = _shown(text, b.start, b.vstart, b.vstart + len(new), new, values[b.name])
        diff[0:0] = [f"-{b.line}: {old_shown}", f"+{b.line}: {new_shown}"]
    missing = [name for name in values if name not in {b.name for b in bindings}]
    if missing and not create:
        raise KeyError(", ".join(missing))
    eol = (re.findall(r"\r\n|\n|\r", text) or ["\n"])[-1]  # as the file's last line ends
    for name in missing:
        if text and not text.endswith(("\n", "\r")):
            text += eol
        text += f"{name}={encode(values[name], '')}{eol}"
        diff.append(f"+{len(text.splitlines())}: {name}={mask(values[name])} (added)")
    return text, diff


def _shown(text: str, start: int, vstart: int, vend: int, raw: str, value: str | None) -> str:
    """The binding's first line with its value masked (quotes and comment kept)."""
    end = re.compile(r"[^\r\n]*").match(text, vend).end()  # type: ignore[union-attr]
    body = raw.lstrip("=")
    quote = body[:1] if body[:1] in ("'", '"') else ""
    shown = f"{'=' if raw.startswith('=') else ''}{quote}{mask(value) if value else ''}{quote}"
    return (text[start:vstart] + shown + text[vend:end]).strip()
