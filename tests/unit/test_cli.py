"""The command line as a user meets it: help, exit codes, JSON, redaction, lean start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, fake_key


def kr(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", "KEYRESPONSE_ACTION_MODULES": "tests.helpers.actions",
                "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("KEYRESPONSE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "keyresponse", *args], cwd=cwd, env=full_env,
                          input=stdin, capture_output=True, text=True, timeout=60)


PLAYBOOK = """\
name: hello
description: Say hello twice.
inputs:
  who: {default: world, description: Whom to greet}
steps:
  - {id: a, uses: log.message, with: {message: "hello ${{ inputs.who }}"}}
  - {id: b, uses: log.message, with: {message: "${{ steps.a.outputs.message }} again"}}
"""


def test_help_teaches(tmp_path: Path) -> None:
    out = kr("--help", cwd=tmp_path)
    assert out.returncode == 0
    for word in ("run", "plan", "resume", "incidents", "validate", "schema", "leaked-key"):
        assert word in out.stdout
    assert kr("run", "--help", cwd=tmp_path).returncode == 0


def test_run_and_plan_a_log_playbook(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(PLAYBOOK)
    planned = kr("plan", "hello.yaml", "--json", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    lines = [json.loads(line) for line in planned.stdout.splitlines()]
    assert lines[-1]["event"] == "result" and lines[-1]["mode"] == "plan"
    assert [s["status"] for s in lines[-1]["steps"]] == ["planned", "planned"]

    ran = kr("run", "hello.yaml", "--input", "who=ops", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "hello ops again" in ran.stderr
    incident_dir = next((tmp_path / ".keyresponse" / "incidents").iterdir())
    records = [json.loads(x) for x in (incident_dir / "journal.jsonl").read_text().splitlines()]
    started = [r["step"] for r in records if r["event"] == "step.started"]
    finished = [r["step"] for r in records if r["event"] == "step.finished"]
    assert started == finished == ["a", "b"]

    listed = kr("incidents", "--all", "--json", cwd=tmp_path)
    assert {r["status"] for r in json.loads(listed.stdout)} == {"planned", "succeeded"}


def test_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(PLAYBOOK)
    (tmp_path / "bad.yaml").write_text("name: x\nsteps:\n  - {id: a, uses: nope.nope}\n")
    (tmp_path / "fails.yaml").write_text("name: f\nsteps:\n  - {id: a, uses: wait.approval}\n")
    assert kr("run", "hello.yaml", "--bogus-flag", cwd=tmp_path).returncode == 2
    bad = kr("run", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 2 and "bad.yaml:3:" in bad.stderr and "unknown action" in bad.stderr
    assert kr("run", "no-such-playbook", cwd=tmp_path).returncode == 2
    assert kr("run", "hello.yaml", "--input", "nobody=1", cwd=tmp_path).returncode == 2
    failed = kr("run", "fails.yaml", cwd=tmp_path)  # no TTY and no --yes: the gate refuses
    assert failed.returncode == 1 and "keyresponse resume" in failed.stderr
    assert kr("run", "fails.yaml", "--yes", cwd=tmp_path).returncode == 0


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "keyresponse.yaml").write_text("keys:\n  a:\n    provider: nope\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "hello.yaml").write_text(PLAYBOOK)
    (tmp_path / "playbooks" / "bad.yaml").write_text("name: x\nname: y\nsteps: []\n")
    out = kr("validate", cwd=tmp_path)
    assert out.returncode == 2
    assert "keyresponse.yaml:3:" in out.stderr and "bad.yaml:2:" in out.stderr
    assert "ok    " in out.stdout and "hello.yaml" in out.stdout


def test_schema_is_json_schema(tmp_path: Path) -> None:
    import jsonschema

    for kind in ("inventory", "playbook"):
        out = kr("schema", kind, cwd=tmp_path)
        assert out.returncode == 0
        jsonschema.Draft202012Validator.check_schema(json.loads(out.stdout))


def test_leaked_value_only_from_stdin_and_never_echoed(tmp_path: Path) -> None:
    leaked = fake_key("cli")
    (tmp_path / "echo.yaml").write_text(
        "name: echo\ninputs:\n  leaked: {type: secret}\nsteps:\n"
        "  - {id: a, uses: test.use_secret, with: {secret: '${{ inputs.leaked }}'}}\n")
    out = kr("run", "echo.yaml", "--leaked-stdin", "--json", cwd=tmp_path, stdin=leaked + "\n")
    assert out.returncode == 0, out.stderr
    assert "use sk-" in out.stdout  # the mask, not the value
    everything = out.stdout + out.stderr + "".join(
        p.read_text() for p in (tmp_path / ".keyresponse").rglob("*") if p.is_file())
    assert leaked not in everything
    refused = kr("run", "echo.yaml", "--input", f"leaked={leaked}", cwd=tmp_path)
    assert refused.returncode == 2 and "never argv" in refused.stderr
    assert leaked not in refused.stderr + refused.stdout


def test_start_up_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys, keyresponse.cli; heavy = [m for m in ('httpx', 'jinja2', 'slack_sdk', 'pydantic', "
            "'nacl', 'yaml', 'rich', 'starlette', 'uvicorn') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("flag", ["--help"])
def test_console_script_installed(tmp_path: Path, flag: str) -> None:
    exe = Path(sys.executable).parent / "keyresponse"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    assert subprocess.run([str(exe), flag], capture_output=True, timeout=30).returncode == 0


def test_a_key_playbook_without_any_key_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "k.yaml").write_text(
        "name: k\ninputs:\n  key: {}\n  leaked: {type: secret}\nsteps:\n  - {id: a, uses: log.message, with: {message: m}}\n")
    out = kr("run", "k.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "--leaked-stdin" in out.stderr
    assert not (tmp_path / ".keyresponse").exists()  # refused before any incident was opened
