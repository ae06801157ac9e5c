"""The inventory's admin-key entries: `admin.source` must name one of the entry's envfile
targets (refused at its line otherwise), and a credential switched in memory wins over
the environment without touching it."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyresponse.errors import ConfigError
from keyresponse.inventory import load_inventory

BASE = """version: 1
providers:
  openai: {kind: openai, base_url: "http://127.0.0.1:9/v1", admin_key_env: TEST_ADMIN_KEY}
keys:
  org-admin:
    kind: admin
    admin: {source: SOURCE}
    targets:
      - {kind: envfile, path: admin.env, variables: [TEST_ADMIN_KEY], create: true}
      - {kind: command, argv: ["true"]}
"""


@pytest.mark.parametrize(("source", "ok"), [("1", True), ("2", False), ("3", False)])
def test_the_source_is_one_of_the_entrys_env_files(tmp_path: Path, source: str, ok: bool) -> None:
    path = tmp_path / "keyresponse.yaml"
    path.write_text(BASE.replace("SOURCE", source))
    if ok:
        entry = load_inventory(path).key("org-admin")
        assert entry.kind == "admin" and entry.admin.source == 1 and entry.admin.name_prefix == "keyresponse-admin"
        return
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    assert "keys.org-admin.admin.source" in caught.value.message and caught.value.line == 7


def test_a_project_key_has_no_source(tmp_path: Path) -> None:
    path = tmp_path / "keyresponse.yaml"
    path.write_text(BASE.replace("kind: admin", "kind: project").replace("SOURCE", "1"))
    with pytest.raises(ConfigError, match="kind: admin"):
        load_inventory(path)


def test_a_switched_credential_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keyresponse.yaml"
    path.write_text(BASE.replace("SOURCE", "1"))
    inventory = load_inventory(path)
    monkeypatch.setenv("TEST_ADMIN_KEY", "old-" + "x" * 8)
    assert inventory.credential("TEST_ADMIN_KEY", "t").startswith("old-")
    inventory.use_credential("TEST_ADMIN_KEY", "new-" + "y" * 8)
    assert inventory.credential("TEST_ADMIN_KEY", "t").startswith("new-")
    import os

    assert os.environ["TEST_ADMIN_KEY"].startswith("old-"), "the environment (children's) is left alone"


def test_the_sandbox_inventory_lists_its_admin_key_so_the_admin_playbook_runs_out_of_the_box(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "keyresponse", "run", "leaked-admin-key", "--key", "org-admin",
                          "--sandbox", "--yes", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1])["ok"]
    entry = yaml.safe_load((tmp_path / "keyresponse.yaml").read_text())["keys"]["org-admin"]
    assert entry["kind"] == "admin" and entry["admin"] == {"source": 1}
    assert entry["targets"] == [{"kind": "envfile", "path": "sandbox.env", "variables": ["OPENAI_ADMIN_KEY"]}]
    incident = json.loads(out.stdout.splitlines()[-1])["incident"]
    report = (tmp_path / ".keyresponse" / "incidents" / incident / "report.md").read_text()
    assert entry["key_id"] in report and "Leaked admin key" in report
