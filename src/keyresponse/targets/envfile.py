"""`envfile` targets: variables in a dotenv file, edited in place.

Only the value of each named variable changes; every other byte stays — other
lines, the edited line's `export`, spacing, quoting style, inline comment and
line ending (python-dotenv's `set_key` loses some of these, races concurrent
writers and replaces read-only files and symlinks, so it is not used here).
Writes hold a sidecar flock across read-modify-write and are atomic (atomicfile.py:
temp file, fsync, the original's owner and mode, rename, fsync the folder). A writer
killed mid-way may leave `.NAME.keyresponse-tmp*`; the next write removes it.
The dotenv parsing and editing itself is in dotenv.py; this module is the target:
locking, the atomic write and confinement of the path to the inventory's folder.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from keyresponse import atomicfile
from keyresponse.errors import TargetError
from keyresponse.fields import ENV_NAME
from keyresponse.inventory import Problem, TargetSettings
from keyresponse.targets.base import identity
from keyresponse.targets.dotenv import EnvParseError, edit, parse

if TYPE_CHECKING:
    from keyresponse.action import Check
    from keyresponse.secret import Secret
    from keyresponse.targets.base import TargetEnv

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOCK_WAIT = 10.0

kind = "envfile"


class EnvFileTarget(TargetSettings):
    kind: Literal["envfile"]
    path: str = Field(description="The dotenv file, relative to the inventory file")
    variables: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(min_length=1)
    create: bool = Field(True, description="Add the variable if the file lacks it")
    allow_outside: bool = Field(False, description="Allow paths outside the inventory's folder")

    def problems_at(self, root: Path) -> list[str | Problem]:
        try:
            place(self.path, Path(os.path.realpath(root)), self.allow_outside)
        except PathProblem as exc:
            return [Problem(exc.problem, "path", exc.fix)]
        return []


Settings = EnvFileTarget


class PathProblem(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def place(raw: str, root: Path, allow_outside: bool) -> Path:
    """The file an env-file target's `path:` names, symlinks resolved; PathProblem if it must
    not be written. The rule (README, "envfile"): a path is relative to the inventory's
    folder `root` (an absolute one is taken as it is) and, unless `allow_outside: true`,
    has no `..` and ends inside `root` once every symlink is resolved; it holds no NUL,
    newline or other control character; and what it names, if it exists, is a regular file
    (not a folder, device, FIFO or socket) reached without a symlink loop. Checked when the
    inventory loads and again before every write (the disk may have changed since)."""
    if not raw.strip():
        raise PathProblem("the path is empty", "name the env file")
    bad = next((c for c in raw if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        what = {"\0": "a NUL byte", "\n": "a newline", "\r": "a carriage return"}.get(bad, "a control character")
        raise PathProblem(f"the path {raw!r} holds {what}", "write the file's name without it")
    path = Path(raw) if Path(raw).is_absolute() else root / raw
    if not allow_outside and ".." in Path(raw).parts:
        raise PathProblem("the path contains '..'", "write the path without '..', or set `allow_outside: true`")
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None  # created on write (`create:`), or a dangling symlink: its target is
    except NotADirectoryError:
        raise PathProblem(f"a part of {raw} is a file, not a folder", "point the target at the env file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathProblem(f"{raw} is a symlink loop: it never reaches a file",
                              "point the target at the real file, or fix the symlink") from None
        st = None  # cannot look (permissions): the preflight says so
    real = Path(os.path.realpath(path))
    if not allow_outside and real != root and root not in real.parents:
        how = " through a symlink" if real != Path(os.path.abspath(path)) else ""
        raise PathProblem(f"resolves{how} to {real}, outside {root}",
                          "point the target at the real file inside the inventory's folder, "
                          "or set `allow_outside: true`")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise PathProblem(f"{raw} is a folder, not a file", "name the env file inside it")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PathProblem(f"{raw} is not a regular file (a device, FIFO or socket)",
                          "point the target at the env file itself")
    if st is not None and st.st_nlink > 1:
        raise PathProblem(*_hard_linked(raw, st.st_nlink))
    return real


def _hard_linked(raw: str, names: int) -> tuple[str, str]:
    # the atomic replace gives this name a new file; the other names would keep the old
    # one, and the leaked key in it. Writing in place instead could leave a half-written
    # file, so keyresponse refuses, before anything changes.
    return (f"{raw} is a hard link ({names} names for one file): keyresponse refuses to replace it, "
            "which would leave the leaked key under the other names",
            f"give the file one name: find the others (find / -xdev -samefile {raw}) and remove them "
            "or make them symlinks to it")


BOM = "\ufeff"  # UTF-8 byte-order mark: kept, as every other byte is


def _decoded(raw: bytes) -> tuple[str, str]:
    """(BOM or "", the text after it) of an env file's bytes; UnicodeDecodeError if not UTF-8."""
    text = raw.decode("utf-8")
    return (BOM, text[1:]) if text.startswith(BOM) else ("", text)


def _not_utf8(raw: bytes) -> tuple[str, str]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ("the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8",
                "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)")
    return "the file is not UTF-8", "convert it to UTF-8"


def from_config(settings: TargetSettings, env: TargetEnv) -> EnvFile:
    assert isinstance(settings, EnvFileTarget)
    return EnvFile(settings, env.root)


class EnvFile:
    kind: ClassVar[str] = "envfile"
    restart_what: str | None = None

    def __init__(self, cfg: EnvFileTarget, root: Path) -> None:
        for name in cfg.variables:
            if not NAME.fullmatch(name):
                raise TargetError(f"env file {cfg.path}", f"{name!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        self.cfg = cfg
        self.root = Path(os.path.realpath(root))
        self.path = Path(cfg.path) if Path(cfg.path).is_absolute() else root / cfg.path
        # this machine's file, as written (a symlink is its own place), and its variables
        self.identity = identity(kind, "", f"{os.path.normpath(os.path.abspath(self.path))}:{','.join(cfg.variables)}")

    def describe(self) -> str:
        return f"env file {self.cfg.path}:{','.join(self.cfg.variables)}"

    # --- checks

    def _real(self) -> Path:
        """The file to edit: `place()`, or a TargetError saying why not."""
        try:
            return place(self.cfg.path, self.root, self.cfg.allow_outside)
        except PathProblem as exc:
            raise TargetError(self.describe(), exc.problem, hint=exc.fix) from None

    def _problems(self, real: Path) -> tuple[str, str] | None:
        """(problem, fix) that stops a write, or None. Read-only."""
        if not real.exists():
            if not self.cfg.create:
                return "the file does not exist", "create it, or set `create: true`"
            if not real.parent.is_dir() or not os.access(real.parent, os.W_OK | os.X_OK):
                return f"the folder {real.parent} is missing or not writable", "create the folder or fix its permissions"
            return None
        unfit = atomicfile.unwritable(real)
        if unfit:
            return unfit
        links = real.stat().st_nlink
        if links > 1:  # again here, under the lock: a link may have been made since the load
            return _hard_linked(self.cfg.path, links)
        raw = real.read_bytes()
        try:
            _, text = _decoded(raw)
        except UnicodeDecodeError:
            return _not_utf8(raw)
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
        stale = atomicfile.leftovers(real)
        if stale:  # a killed writer's temp file may hold a secret; preflight only reads, so it says so
            names = ", ".join(p.name for p in stale)
            return [Check(self.describe(), False, f"a killed writer left {names}, which may hold a secret",
                          f"a real run removes it before writing; or delete it now: rm {stale[0]}")]
        problem = self._problems(real)
        if problem:
            return [Check(self.describe(), False, problem[0], problem[1])]
        return [Check(self.describe(), True, "writable and parses")]

    # --- the change

    def write(self, secret: Secret) -> str | None:
        real = self._real()
        values = {v: secret.reveal() for v in self.cfg.variables}
        with atomicfile.locked(atomicfile.lock_path(real), wait=LOCK_WAIT) as held:
            problem = self._problems(real)
            if not held:
                raise TargetError(self.describe(), problem[0] if problem else
                                  f"another writer has held {atomicfile.lock_path(real).name} for {LOCK_WAIT:g}s",
                                  hint=problem[1] if problem else "find the other writer, or retry")
            atomicfile.leftovers(real, remove=True)
            if problem:
                raise TargetError(self.describe(), problem[0], hint=problem[1])
            bom, old = _decoded(real.read_bytes()) if real.exists() else ("", "")
            new, diff = edit(old, values, create=self.cfg.create)
            if new == old:
                return "unchanged: already holds this value"
            try:
                atomicfile.replace(real, (bom + new).encode("utf-8"), crash_label="envfile")
            except atomicfile.OwnerError as exc:
                raise TargetError(self.describe(), str(exc), hint="run as the file's owner") from None
        return "; ".join(diff)

    def verify(self, secret: Secret) -> bool:
        real = self._real()
        found = {b.name: b.value for b in parse(_decoded(real.read_bytes())[1])}
        wrong = [v for v in self.cfg.variables if found.get(v) != secret.reveal()]
        if wrong:
            raise TargetError(self.describe(), f"{', '.join(wrong)} reads back a different value after the write")
        return True

    def restart(self) -> bool | None:
        return None
