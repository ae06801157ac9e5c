"""The conventions a command line is expected to keep: --version, -h, completion, "did you
mean", errors in our words with 1-based numbers, JSON with fields, filters, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_cli import PLAYBOOK, kr

INVENTORY = """\
version: 1
providers:
  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}
keys:
  app:
    provider: openai
    project: proj_a
    targets:
      - {kind: envfile, path: a.env, variables: [X]}
      - {kind: envfil, path: a.env, variables: [X]}
"""


def test_version_short_help_and_completion(tmp_path: Path) -> None:
    from keyresponse import __version__

    version = kr("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"keyresponse {__version__}"
    assert kr("-h", cwd=tmp_path).returncode == 0
    short = kr("run", "-h", cwd=tmp_path)
    assert short.returncode == 0 and "--dry-run" in short.stdout
    assert "--install-completion" in kr("--help", cwd=tmp_path).stdout


def test_did_you_mean_for_commands_and_keys(tmp_path: Path) -> None:
    typo = kr("rn", cwd=tmp_path)
    assert typo.returncode == 2 and "Did you mean 'run'" in typo.stderr
    (tmp_path / "keyresponse.yaml").write_text(INVENTORY.replace("      - {kind: envfil, path: a.env, variables: [X]}\n", ""))
    out = kr("drill", "--key", "ap", cwd=tmp_path)
    assert out.returncode == 2 and "did you mean 'app'" in out.stderr


def test_errors_in_our_words_with_1_based_target_numbers(tmp_path: Path) -> None:
    (tmp_path / "keyresponse.yaml").write_text(INVENTORY)
    out = kr("validate", cwd=tmp_path)
    assert out.returncode == 2
    assert "Input tag" not in out.stderr and "found using" not in out.stderr
    assert "keys.app, target #2" in out.stderr, out.stderr
    assert "unknown target kind 'envfil' (did you mean 'envfile'?)" in out.stderr


def test_yaml_errors_say_what_to_fix(tmp_path: Path) -> None:
    (tmp_path / "keyresponse.yaml").write_text("version: 1\nkeys:\n\tapp: {}\n")
    tab = kr("validate", cwd=tmp_path)
    assert tab.returncode == 2 and "tab" in tab.stderr and "spaces" in tab.stderr
    (tmp_path / "keyresponse.yaml").write_text("version: 1\nkeys:\n  app: {provider: openai\n  b: 2\n")
    brace = kr("validate", cwd=tmp_path)
    assert brace.returncode == 2 and "}" in brace.stderr.split("hint:", 1)[-1]


def test_validate_json_gives_each_problem_as_fields(tmp_path: Path) -> None:
    (tmp_path / "keyresponse.yaml").write_text(INVENTORY)
    out = kr("validate", "--json", cwd=tmp_path)
    assert out.returncode == 2
    problems = json.loads(out.stdout)["problems"]
    (p,) = [p for p in problems if p["file"].endswith("keyresponse.yaml")]
    assert (p["line"], p["column"]) == (10, 9)
    assert p["message"].startswith("keys.app, target #2: unknown target kind") and p["hint"]


def test_incidents_filters_and_ids(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(PLAYBOOK)
    assert kr("run", "hello.yaml", cwd=tmp_path).returncode == 0
    assert kr("plan", "hello.yaml", cwd=tmp_path).returncode == 0
    rows = json.loads(kr("incidents", "--json", cwd=tmp_path).stdout)
    assert [r["mode"] for r in rows] == ["apply"]  # plans (and drills) are hidden unless asked
    assert len(json.loads(kr("incidents", "--all", "--json", cwd=tmp_path).stdout)) == 2
    assert json.loads(kr("incidents", "--status", "failed", "--json", cwd=tmp_path).stdout) == []
    assert len(json.loads(kr("incidents", "--playbook", "hello", "--json", cwd=tmp_path).stdout)) == 1
    assert json.loads(kr("incidents", "--since", "2999-01-01", "--json", cwd=tmp_path).stdout) == []
    assert len(json.loads(kr("incidents", "--since", "7d", "--json", cwd=tmp_path).stdout)) == 1
    assert kr("incidents", "--since", "yesterday-ish", cwd=tmp_path).returncode == 2

    finished = rows[0]["id"]
    again = kr("resume", finished, cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stderr
    unknown = kr("report", "zzzz", cwd=tmp_path)
    assert unknown.returncode == 2 and "keyresponse incidents" in unknown.stderr
    assert kr("resume", "zzzz", cwd=tmp_path).returncode == 2


def test_report_open_says_where_the_file_is_without_a_browser(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(PLAYBOOK)
    assert kr("run", "hello.yaml", cwd=tmp_path).returncode == 0
    incident = json.loads(kr("incidents", "--json", cwd=tmp_path).stdout)[0]["id"]
    out = kr("report", incident, "--open", cwd=tmp_path, env={"BROWSER": str(tmp_path / "no-such-browser")})
    assert out.returncode == 0, out.stderr
    html = str(tmp_path / ".keyresponse" / "incidents" / incident / "report.html")
    assert "could not open a browser" in out.stderr and html in out.stderr
