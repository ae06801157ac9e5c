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
