"""Hostile input fails fast and small, from outside: a real `keyresponse` process, its
peak memory read from the kernel (wait4), never a crash, never a hang mid-incident."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.measured import Ran, run_measured

PEAK_MB = 200  # an OOM-free run on the smallest CI runner or container
HANG = 60  # seconds: far beyond a refusal, which takes a fraction of one; a hang guard, not a timing check


def kr(*args: str, cwd: Path) -> Ran:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    env.pop("KEYRESPONSE_CONFIG", None)
    return run_measured([sys.executable, "-m", "keyresponse", *args], cwd=cwd, env=env, hang=HANG, files=cwd / ".run")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "keyresponse.yaml").write_text("keys: {}\n")
    return tmp_path


POW_BOMB = "((((9**64)**64)**64)**64)**64"


def test_a_constant_arithmetic_bomb_is_refused_when_the_playbook_loads(folder: Path) -> None:
    (folder / "pb.yaml").write_text(
        "name: bomb\nsteps:\n"
        "  - {id: a, uses: log.message, with: {message: hello}}\n"
        f"  - {{id: b, uses: log.message, with: {{message: \"${{{{ {POW_BOMB} }}}}\"}}}}\n")
    for command in (["validate", "pb.yaml"], ["run", "pb.yaml"]):
        ran = kr(*command, cwd=folder)
        assert ran.returncode == 2, ran.stderr
        assert "pb.yaml:4:" in ran.stderr and "number too large" in ran.stderr
        assert ran.peak_mb < PEAK_MB
    assert not (folder / ".keyresponse").exists(), "a refused playbook opened an incident"


@pytest.mark.parametrize("body", [
    "(((((inputs.n | int) ** 64) ** 64) ** 64) ** 64) ** 64",
    "[[(inputs.n | int)] * 60000] * 60000",
    "([inputs.t * 65536] * 65536) | join",
    "'-'.join([inputs.t * 60000] * 60000)",
    "(inputs.t * 65536).replace(inputs.t, inputs.t * 65536)",
    "(inputs.t * 65536) | replace(inputs.t, inputs.t * 65536)",
    "((inputs.t ~ '\\t') * 30000).expandtabs(99999)",
    "((inputs.t ~ '\\n') * 30000) | indent(99999)",
    "range(inputs.n | int * 11111) | map('center', 99999) | join",
])
def test_a_bomb_that_reads_inputs_is_refused_before_the_first_step_fast_and_small(folder: Path, body: str) -> None:
    (folder / "pb.yaml").write_text(
        "name: bomb\ninputs:\n  n: {default: '9'}\n  t: {default: x}\nsteps:\n"
        f"  - {{id: a, uses: log.message, with: {{message: \"${{{{ {body} }}}}\"}}}}\n"
        "  - {id: after, uses: log.message, always: true, with: {message: still here}}\n")
    ran = kr("run", "pb.yaml", cwd=folder)
    assert ran.returncode == 2, ran.stderr
    assert "refused by the sandbox" in ran.stderr and "step 'a'" in ran.stderr, ran.stderr
    assert "still here" not in ran.stderr  # it reads only inputs: refused as the run starts, before any step
    assert "Traceback" not in ran.stderr
    assert ran.peak_mb < PEAK_MB, f"{ran.peak_mb:.0f} MB"


@pytest.mark.parametrize("where", ["keyresponse.yaml", "pb.yaml"])
def test_a_huge_integer_in_yaml_is_a_load_error(folder: Path, where: str) -> None:
    huge = "9" * 100_000
    (folder / "pb.yaml").write_text("name: ok\nsteps:\n  - {id: a, uses: log.message, with: {message: hi}}\n")
    if where == "pb.yaml":
        (folder / "pb.yaml").write_text(f"name: ok\nsteps:\n  - id: a\n    uses: log.message\n    timeout: {huge}\n")
    else:
        (folder / "keyresponse.yaml").write_text(f"keys:\n  a:\n    key_id: {huge}\n")
    ran = kr("validate", "pb.yaml", cwd=folder)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    line = 5 if where == "pb.yaml" else 3
    assert f"{where}:{line}:" in ran.stderr and "number too large" in ran.stderr, ran.stderr


@pytest.mark.parametrize("value", ["!!python/object/apply:os.system [echo owned]",
                                   "!!python/object:os.Popen {args: [echo]}", "!!set {a}", "!custom [1, 2]"])
def test_non_standard_tags_on_collections_are_refused(folder: Path, value: str) -> None:
    (folder / "pb.yaml").write_text(f"name: tags\nsteps:\n  - id: a\n    uses: log.message\n    with: {value}\n")
    ran = kr("validate", "pb.yaml", cwd=folder)
    assert ran.returncode == 2 and "pb.yaml:5:" in ran.stderr and "not allowed" in ran.stderr, ran.stderr
