"""`envfile` targets: variables in a dotenv file, edited in place.

Only the value of each named variable changes; every other byte stays — other
lines, the edited line's `export`, spacing, quoting style, inline comment and
line ending (python-dotenv's `set_key` loses some of these, races concurrent
writers and replaces read-only files and symlinks, so it is not used here).
Writes hold a sidecar flock across read-modify-write and are atomic: temp file
in the same folder (mode 0600 while it holds the value), fsync, chown/chmod to
the original's owner and mode, `os.replace`, fsync the folder. A writer killed
mid-way may leave `.NAME.keyresponse-tmp*`; the next write or preflight removes it.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator

from keyresponse.errors import TargetError
from keyresponse.faults import crashpoint
from keyresponse.secret import mask

if TYPE_CHECKING:
    from keyresponse.action import Check
    from keyresponse.inventory import EnvFileTarget
    from keyresponse.secret import Secret

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TMP_MARK = ".keyresponse-tmp"
LOCK_MARK = ".keyresponse-lock"
LOCK_WAIT = 10.0
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
            if tail is None or tail.end() == p and p < n:
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


class EnvFile:
    kind: ClassVar[str] = "envfile"
    restart_what = None

    def __init__(self, cfg: EnvFileTarget, root: Path) -> None:
        for name in cfg.variables:
            if not NAME.fullmatch(name):
                raise TargetError(f"env file {cfg.path}", f"{name!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        self.cfg = cfg
        self.root = Path(os.path.realpath(root))
        self.path = Path(cfg.path) if Path(cfg.path).is_absolute() else root / cfg.path

    def describe(self) -> str:
        return f"env file {self.cfg.path}:{','.join(self.cfg.variables)}"

    # --- checks

    def _real(self) -> Path:
        """The file to edit, after refusing `..` and symlinks that leave the root."""
        real = Path(os.path.realpath(self.path))
        if self.cfg.allow_outside:
            return real
        if ".." in Path(self.cfg.path).parts:
            raise TargetError(self.describe(), "the path contains '..'",
                              hint="write the path without '..', or set `allow_outside: true`")
        if real != self.root and self.root not in real.parents:
            how = " through a symlink" if real != Path(os.path.abspath(self.path)) else ""
            raise TargetError(self.describe(), f"resolves{how} to {real}, outside {self.root}",
                              hint="point the target at the real file inside the inventory's folder, "
                                   "or set `allow_outside: true`")
        return real

    def _problems(self, real: Path) -> tuple[str, str] | None:
        """(problem, fix) that stops a write, or None. Read-only."""
        if not real.exists():
            if not self.cfg.create:
                return "the file does not exist", "create it, or set `create: true`"
            if not real.parent.is_dir() or not os.access(real.parent, os.W_OK | os.X_OK):
                return f"the folder {real.parent} is missing or not writable", "create the folder or fix its permissions"
            return None
        st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file", "point the target at a dotenv file"
        if not st.st_mode & stat.S_IWUSR or not os.access(real, os.W_OK):
            return "the file is read-only; keyresponse does not replace it behind its owner's back", \
                f"make it writable (chmod u+w {real}) or update it by hand"
        if not os.access(real.parent, os.W_OK | os.X_OK):
            return f"its folder {real.parent} is not writable (needed for an atomic replace)", \
                "make the folder writable for this user"
        try:
            text = real.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return "the file is not UTF-8", "convert it to UTF-8"
        try:
            names = {b.name for b in parse(text)}
        except EnvParseError as exc:
            return f"does not parse: {exc}", f"fix {real}:{exc.line}"
        missing = [v for v in self.cfg.variables if v not in names]
        if missing and not self.cfg.create:
            return f"{', '.join(missing)} not in the file", "add the variable, or set `create: true`"
        return None

    def preflight(self) -> list[Check]:
        from keyresponse.action import Check

        try:
            real = self._real()
        except TargetError as exc:
            return [Check(self.describe(), False, exc.message.removeprefix(exc.target + ": "), exc.hint)]
        if _stale(real):  # a killed writer's temp file holds a secret: remove it even in a dry run
            with _locked(real, wait=0) as held:
                if held:
                    _stale(real, remove=True)
        problem = self._problems(real)
        if problem:
            return [Check(self.describe(), False, problem[0], problem[1])]
        return [Check(self.describe(), True, "writable and parses")]

    # --- the change

    def write(self, secret: Secret) -> str | None:
        real = self._real()
        values = {v: secret.reveal() for v in self.cfg.variables}
        with _locked(real, wait=LOCK_WAIT) as held:
            problem = self._problems(real)
            if not held:
                raise TargetError(self.describe(), problem[0] if problem else
                                  f"another writer has held {_lock_path(real).name} for {LOCK_WAIT:g}s",
                                  hint=problem[1] if problem else "find the other writer, or retry")
            _stale(real, remove=True)
            if problem:
                raise TargetError(self.describe(), problem[0], hint=problem[1])
            old = real.read_bytes().decode("utf-8") if real.exists() else ""
            new, diff = edit(old, values, create=self.cfg.create)
            if new == old:
                return "unchanged: already holds this value"
            _replace(real, new.encode("utf-8"), self.describe())
        return "; ".join(diff)

    def verify(self, secret: Secret) -> bool:
        real = self._real()
        found = {b.name: b.value for b in parse(real.read_bytes().decode("utf-8"))}
        wrong = [v for v in self.cfg.variables if found.get(v) != secret.reveal()]
        if wrong:
            raise TargetError(self.describe(), f"{', '.join(wrong)} reads back a different value after the write")
        return True

    def restart(self) -> bool | None:
        return None


def _lock_path(real: Path) -> Path:
    return real.with_name(f".{real.name}{LOCK_MARK}")


@contextmanager
def _locked(real: Path, wait: float) -> Iterator[bool]:
    """flock on a sidecar file (the edited file is replaced, so it cannot carry the lock).
    Yields False if the lock could not be had within `wait` seconds."""
    try:
        fd = os.open(_lock_path(real), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # e.g. a read-only folder: the caller reports why
        yield False
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.02)
        yield True
    finally:
        os.close(fd)  # closing drops the flock


def _stale(real: Path, remove: bool = False) -> list[Path]:
    found = list(real.parent.glob(f".{glob.escape(real.name)}{TMP_MARK}*")) if real.parent.is_dir() else []
    for leftover in found if remove else ():
        leftover.unlink(missing_ok=True)
    return found


def _replace(real: Path, data: bytes, shown: str) -> None:
    st = real.stat() if real.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}{TMP_MARK}", dir=real.parent)
    try:
        try:
            if st is not None:
                _keep_owner(fd, st, shown)
            for part, crash in ((data[: len(data) // 2], "envfile:mid-write"), (data[len(data) // 2 :], None)):
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
                if crash:
                    crashpoint(crash)
            os.fsync(fd)
            # mode last: chown may clear set-id bits; mkstemp's 0600 held the value until now
            os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o600)
        finally:
            os.close(fd)
        crashpoint("envfile:before-replace")
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(real.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself must survive a power cut
    finally:
        os.close(folder)


def _keep_owner(fd: int, st: os.stat_result, shown: str) -> None:
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
            raise TargetError(shown, f"cannot keep the file's owner {st.st_uid}:{st.st_gid} (running as "
                              f"{mine.st_uid}:{mine.st_gid})", hint="run as the file's owner") from None
