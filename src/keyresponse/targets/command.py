"""`command` targets: run a configured program and give it the secret on stdin or
in one environment variable of the child — never in argv, which every user of the
machine can read in /proc/<pid>/cmdline. The escape hatch for `fly secrets
import`, `vault kv put ... value=-`, `kubectl`, `systemctl restart`.

No shell unless the target says `shell: true` (then a one-item argv is the command
line for /bin/sh -c; several items are quoted and joined into one). The value goes
on stdin exactly, with no trailing newline. The child's environment is ours less
every variable the inventory names as a credential (admin keys, platform and Slack
tokens, keys' live values) and any variable holding a secret this process has seen.
It runs in a session of its own: a timeout kills its whole process group, and a
Ctrl-C at the terminal does not reach it (it runs to its end or its `timeout:`).
Output is kept (redacted, tail only) for the error message.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from keyresponse.errors import TargetError
from keyresponse.fields import ENV_NAME
from keyresponse.inventory import TargetSettings
from keyresponse.secret import REDACTOR
from keyresponse.targets.base import identity

if TYPE_CHECKING:
    from keyresponse.action import Check
    from keyresponse.secret import Secret
    from keyresponse.targets.base import TargetEnv

OUTPUT_TAIL = 400  # characters of the child's output kept for an error message

kind = "command"


class CommandTarget(TargetSettings):
    kind: Literal["command"]
    name: str | None = None
    argv: list[str] = Field(min_length=1)
    shell: bool = False
    secret_via: Literal["stdin", "env"] = "stdin"
    env_name: str = Field("KEYRESPONSE_SECRET", pattern=ENV_NAME)
    timeout: float = 60.0
    restart_argv: list[str] | None = None
    verify_argv: list[str] | None = None


Settings = CommandTarget


def from_config(settings: TargetSettings, env: TargetEnv) -> Command:
    assert isinstance(settings, CommandTarget)
    return Command(settings, env.root, withheld=env.credential_env_names())


class Command:
    kind: ClassVar[str] = "command"

    def __init__(self, cfg: CommandTarget, cwd: Path, withheld: Collection[str] = ()) -> None:
        self.cfg = cfg
        self.cwd = cwd
        self.withheld = frozenset(withheld)  # env var names the child must not inherit
        self.restart_what = f"run {_show(cfg.restart_argv)}" if cfg.restart_argv else None
        # everything that makes it another place: the same script may push the key under
        # two names (env_name), by two routes, or from two folders
        self.identity = identity(kind, "", " ".join(
            [shlex.join(cfg.argv), f"via={cfg.secret_via}", f"env={cfg.env_name}", f"shell={cfg.shell}", f"cwd={cwd}"]))

    def describe(self) -> str:
        return f"command {self.cfg.name or _show(self.cfg.argv)}"

    def preflight(self) -> list[Check]:
        from keyresponse.action import Check

        problems = []
        for label, argv in (("argv", self.cfg.argv), ("verify_argv", self.cfg.verify_argv),
                            ("restart_argv", self.cfg.restart_argv)):
            if argv and not self.cfg.shell and not _findable(argv[0], self.cwd):
                problems.append(Check(self.describe(), False, f"{label}: {argv[0]!r} is not an executable on PATH",
                                      f"install {argv[0]} or fix `{label}:`"))
        if not self.cwd.is_dir():
            problems.append(Check(self.describe(), False, f"working folder {self.cwd} is missing", "create it"))
        return problems or [Check(self.describe(), True, f"secret via {self.cfg.secret_via}")]

    def write(self, secret: Secret) -> str | None:
        self._run(self.cfg.argv, secret, "the command")
        return None

    def verify(self, secret: Secret) -> bool:
        if not self.cfg.verify_argv:
            return False  # exit code 0 of the write is all we know
        self._run(self.cfg.verify_argv, secret, "verify_argv")
        return True

    def restart(self) -> bool | None:
        if not self.cfg.restart_argv:
            return None
        self._run(self.cfg.restart_argv, None, "restart_argv")
        return True

    def _run(self, argv: list[str], secret: Secret | None, label: str) -> None:
        # no credential the inventory names, whether or not this run has read it yet, and
        # no variable holding any secret this process knows (the leaked key, say)
        known = set(REDACTOR.known())
        env = {k: v for k, v in os.environ.items() if k not in self.withheld and v.strip() not in known}
        data: bytes | None = None
        if secret is not None and self.cfg.secret_via == "env":
            env[self.cfg.env_name] = secret.reveal()
        elif secret is not None:
            data = secret.reveal().encode("utf-8")
        cmd = ["/bin/sh", "-c", argv[0] if len(argv) == 1 else shlex.join(argv)] if self.cfg.shell else list(argv)
        try:
            # a session of its own, so a timeout can kill grandchildren too
            proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, start_new_session=True,
                                    stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise TargetError(self.describe(), f"{label} could not start: {exc.strerror}",
                              hint=f"check `{_show(argv)}`") from None
        try:
            out, _ = proc.communicate(data, timeout=self.cfg.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise TargetError(self.describe(), f"{label} timed out after {self.cfg.timeout:g}s",
                              hint="raise the target's `timeout:` or check the command") from None
        finally:
            # communicate() raised (KeyboardInterrupt, when this runs on the main thread):
            # leave no child behind. On the deploy pool's threads no Ctrl-C arrives here.
            if proc.poll() is None:
                _kill_group(proc)
        if proc.returncode != 0:
            tail = REDACTOR.redact(out.decode("utf-8", "replace"))[-OUTPUT_TAIL:].strip()
            raise TargetError(self.describe(), f"{label} exited with {proc.returncode}"
                              + (f": {tail}" if tail else ""), hint=f"run `{_show(argv)}` by hand to see why")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _findable(program: str, cwd: Path) -> bool:
    if os.sep in program:
        path = Path(program) if Path(program).is_absolute() else cwd / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program) is not None


def _show(argv: list[str] | None) -> str:
    text = " ".join(shlex.join(argv or []).split())  # one line, whatever argv holds
    return text if len(text) <= 60 else text[:57] + "..."
