"""A real child process, waited for with wait4: its exit code, output and peak memory as
the kernel counted them, with a hang guard (not a timing check)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float


def run_measured(argv: list[str], *, cwd: Path, env: dict[str, str], hang: float, files: Path) -> Ran:
    """Run `argv`, its stdout and stderr going to `files`.out / `files`.err (files, not pipes:
    the child may write a lot); fail the test when it is still running after `hang` seconds."""
    out, err = files.with_name(files.name + ".out"), files.with_name(files.name + ".err")
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        deadline = time.monotonic() + hang
        while True:  # wait4, not Popen.wait: it hands back the child's peak memory
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                pytest.fail(f"`{' '.join(argv[-6:])}` still running after {hang}s: it hangs")
            time.sleep(0.02)
        proc.returncode = 0  # reaped above; keep Popen from waiting again
    return Ran(os.waitstatus_to_exitcode(status), out.read_text(), err.read_text(), usage.ru_maxrss / 1024)
