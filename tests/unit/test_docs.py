"""The README is generated where it can be, and kept true: these fail when it drifts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyresponse import registry
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _kr(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("KEYRESPONSE_ACTION_MODULES", "KEYRESPONSE_PLAYBOOKS")}
    out = subprocess.run([sys.executable, "-m", "keyresponse", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout


def test_every_action_is_in_the_readme_table(tmp_path: Path) -> None:
    table = _kr("actions", "--markdown", cwd=tmp_path)
    assert table.strip() in README, "README's action table is stale: paste `keyresponse actions --markdown`"
    for name in registry.ACTIONS:
        assert f"| `{name}` |" in README


def test_every_shipped_playbook_is_documented_from_its_description(tmp_path: Path) -> None:
    section = _kr("playbooks", "--markdown", "--config", str(tmp_path / "none.yaml"), cwd=tmp_path)
    assert section.strip() in README, "README's playbook section is stale: paste `keyresponse playbooks --markdown`"
    for playbook in (REPO / "playbooks").glob("*.yaml"):
        assert f"#### `{playbook.stem}`" in README


def test_readme_names_the_test_command_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in README and "pip install -q -e '.[test]'" in ci
    [command] = [line for line in ci.splitlines() if line.startswith("python -m pytest")]
    assert f"\n{command}\n" in README, command


def test_every_command_is_in_the_reference(tmp_path: Path) -> None:
    help_text = _kr("--help", cwd=tmp_path)
    commands = [line.split()[0] for line in help_text.split("Commands:")[1].splitlines() if line.strip()]
    for command in commands:
        assert f"keyresponse {command}" in README, command
