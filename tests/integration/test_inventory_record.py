"""inventory.record: the inventory names the replacement afterwards, and nothing else changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyresponse.engine import Engine, Mode, RunResult
from keyresponse.inventory import load_inventory
from keyresponse.playbook import load_playbook
from tests.helpers import actions  # noqa: F401  (registers test.replace_text)
from tests.integration.conftest import run_steps

NEW = "key_replacement000001"

ENTRIES = {
    "block": "  app:\n    provider: openai   # the key in production\n    project: proj_a\n    key_id: key_old000000000001\n",
    "quoted": "  app:\n    provider: openai\n    key_id: \"key_old000000000001\"  # quoted\n    project: proj_a\n",
    "flow": "  app: {provider: openai, project: proj_a, key_id: 'key_old000000000001', targets: []}\n",
}


def inventory(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "keyresponse.yaml"
    path.write_text("# our keys\nversion: 1\nproviders:\n  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}\n"
                    "keys:\n" + entry + "  other:\n    provider: openai\n    key_id: key_old000000000001\n")
    return path


def run(config: Path, steps: str, mode: Mode = Mode.APPLY) -> RunResult:
    return run_steps(config, steps, key="app", mode=mode)


RECORD = f"- {{id: record, uses: inventory.record, with: {{key_id: {NEW}}}}}\n"


@pytest.mark.parametrize("style", sorted(ENTRIES) + ["crlf", "bom"])
def test_only_the_entrys_key_id_changes(tmp_path: Path, style: str) -> None:
    config = inventory(tmp_path, ENTRIES.get(style, ENTRIES["block"]))
    if style == "crlf":
        config.write_bytes(config.read_bytes().replace(b"\n", b"\r\n"))
    if style == "bom":
        config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    os.chmod(config, 0o640)
    before = config.read_bytes()
    result = run(config, RECORD)
    assert result.ok, [s.error for s in result.steps]
    after = config.read_bytes()
    assert after == before.replace(b"key_old000000000001", NEW.encode(), 1)  # this entry's, not `other`'s
    assert load_inventory(config).model.keys["app"].key_id == NEW
    assert load_inventory(config).model.keys["other"].key_id == "key_old000000000001"
    assert os.stat(config).st_mode & 0o777 == 0o640
    assert result.steps[0].outputs == {"path": str(config), "key_id": NEW, "was": "key_old000000000001",
                                       "changed": True}
    assert run(config, RECORD).steps[0].summary.startswith("nothing: keys.app.key_id already names")


def test_an_entry_changed_during_the_run_is_left_alone(tmp_path: Path) -> None:
    config = inventory(tmp_path, ENTRIES["block"])
    edit = f"- {{id: edit, uses: test.replace_text, with: {{path: '{config}', old: key_old000000000001, new: key_byhand}}}}\n"
    result = run(config, edit + RECORD)
    record = result.steps[1]
    assert record.status == "failed" and "changed during the run (now key_byhand)" in (record.error or "")
    assert f"set keys.app.key_id to {NEW}" in (record.hint or "")
    assert "key_byhand" in config.read_text() and NEW not in config.read_text()


def test_a_read_only_inventory_fails_the_step_and_says_what_to_set(tmp_path: Path) -> None:
    config = inventory(tmp_path, ENTRIES["block"])
    before = config.read_text()
    os.chmod(config, 0o444)
    try:
        planned = run(config, RECORD, Mode.PLAN)
        assert not planned.ok and "read-only" in (planned.steps[0].error or "")
        result = run(config, RECORD)
    finally:
        os.chmod(config, 0o644)
    record = result.steps[0]
    assert record.status == "failed" and "read-only" in (record.error or "")
    assert f"set keys.app.key_id to {NEW} in {config} by hand" in (record.hint or "")
    assert config.read_text() == before


def test_a_dry_run_says_what_it_would_set_and_changes_nothing(tmp_path: Path) -> None:
    config = inventory(tmp_path, ENTRIES["quoted"])
    before = config.read_text()
    result = run(config, RECORD, Mode.PLAN)
    assert result.ok and result.steps[0].changes == [f"{config}: keys.app.key_id: key_old000000000001 -> {NEW}"]
    assert config.read_text() == before


def test_an_entry_without_key_id_needs_nothing(tmp_path: Path) -> None:
    config = inventory(tmp_path, "  app: {provider: openai, project: proj_a, secret_env: APP_KEY}\n")
    before = config.read_text()
    result = run(config, RECORD)
    assert result.ok and result.steps[0].summary.startswith("nothing: keys.app.key_id is not set")
    assert config.read_text() == before


def test_a_symlinked_inventory_stays_a_link_to_the_edited_file(tmp_path: Path) -> None:
    real = inventory(tmp_path, ENTRIES["block"])
    (tmp_path / "conf").mkdir()
    link = tmp_path / "conf" / "keyresponse.yaml"
    link.symlink_to(real)
    result = run(link, RECORD)
    assert result.ok, [s.error for s in result.steps]
    assert link.is_symlink() and NEW in real.read_text()


def test_the_lock_is_beside_the_file_every_checkout_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyresponse import atomicfile
    from keyresponse.actions import inventory as record_module

    real = inventory(tmp_path, ENTRIES["block"])
    (tmp_path / "checkout").mkdir()
    link = tmp_path / "checkout" / "keyresponse.yaml"  # its own state folder, the same file
    link.symlink_to(real)
    monkeypatch.setattr(record_module, "LOCK_WAIT", 0.2)
    with atomicfile.locked(atomicfile.lock_path(real), wait=1) as held:  # another checkout's run, editing
        assert held
        record = run(link, RECORD).steps[0]
    assert record.status == "failed" and "another run has held" in (record.error or "")
    assert NEW not in real.read_text()


def test_a_block_scalar_is_left_to_the_user(tmp_path: Path) -> None:
    config = inventory(tmp_path, "  app:\n    provider: openai\n    key_id: |-\n      key_old000000000001\n")
    before = config.read_text()
    planned = run(config, RECORD, Mode.PLAN)
    assert not planned.ok and "not written as a plain value" in (planned.steps[0].error or "")
    record = run(config, RECORD).steps[0]
    assert record.status == "failed" and "by hand" in (record.hint or "") and "unexpected" not in (record.error or "")
    assert config.read_text() == before


def test_a_key_named_inventory_and_a_killed_writers_leftovers(tmp_path: Path) -> None:
    config = inventory(tmp_path, ENTRIES["block"].replace("  app:", "  inventory:"))
    leftover = tmp_path / ".keyresponse.yaml.keyresponse-tmp1234"
    leftover.write_text("half of an inventory")
    book = tmp_path / "book.yaml"
    book.write_text("name: t\nsteps:\n" + RECORD.replace("- {", "  - {"))
    pb = load_playbook(book)
    result = Engine(load_inventory(config), mode=Mode.APPLY, assume_yes=True).start(pb, {}, "inventory")
    assert result.ok, [s.error for s in result.steps]  # its own key lock is not the inventory's lock
    assert NEW in config.read_text() and not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".keyresponse.yaml")) == []
