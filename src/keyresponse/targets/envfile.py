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

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from keyresponse import atomicfile
from keyresponse.errors import TargetError
from keyresponse.fields import ENV_NAME
from keyresponse.inventory import TargetSettings
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


Settings = EnvFileTarget


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
        unfit = atomicfile.unwritable(real)
        if unfit:
            return unfit
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
            old = real.read_bytes().decode("utf-8") if real.exists() else ""
            new, diff = edit(old, values, create=self.cfg.create)
            if new == old:
                return "unchanged: already holds this value"
            try:
                atomicfile.replace(real, new.encode("utf-8"), crash_label="envfile")
            except atomicfile.OwnerError as exc:
                raise TargetError(self.describe(), str(exc), hint="run as the file's owner") from None
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
