"""The API descriptions and alert fixtures the tests use live in the project (tests/specs,
tests/fixtures/alerts). Where the team's shared folder is beside the repository, the
project's copies must not have fallen behind it: every shared alert fixture is here byte
for byte, and every operation a shared API description has is in the project's copy
(which may describe more, when a client starts using a new endpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ALERT_FIXTURES, SHARED, SPECS

SHARED_SPECS = SHARED / "specs"
SHARED_ALERTS = SHARED / "fixtures" / "alerts"


def _shared(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"no shared folder at {folder}: nothing to compare the project's copies with")
    return folder


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data: dict[str, Any] = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return data


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], Any]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(path, m): op for path, item in spec.get("paths", {}).items() for m, op in item.items() if m in methods}


def test_every_spec_the_tests_use_is_in_the_project() -> None:
    assert {p.name for p in SPECS.iterdir() if p.suffix in {".yaml", ".json"}} == {
        "openai-admin.openapi.yaml", "github-actions-secrets.openapi.yaml", "slack-web.openapi.json"}
    assert "license" in (SPECS / "README.md").read_text().lower()


@pytest.mark.parametrize("name", ["openai-admin.openapi.yaml", "github-actions-secrets.openapi.yaml",
                                  "slack-web.openapi.json"])
def test_project_spec_covers_the_shared_one(name: str) -> None:
    shared = _operations(_load(_shared(SHARED_SPECS) / name))
    ours = _operations(_load(SPECS / name))
    missing = sorted(set(shared) - set(ours))
    assert not missing, f"tests/specs/{name} lacks operations the shared copy has: {missing}"
    changed = sorted(k for k in shared if shared[k] != ours[k])
    assert not changed, f"tests/specs/{name} differs from the shared copy on: {changed}"


def test_alert_fixtures_match_the_shared_ones() -> None:
    folder = _shared(SHARED_ALERTS)
    for shared in sorted(folder.iterdir()):
        if shared.name == "README.md":
            continue
        ours = ALERT_FIXTURES / shared.name
        assert ours.is_file(), f"tests/fixtures/alerts/{shared.name} is missing"
        assert ours.read_bytes() == shared.read_bytes(), f"tests/fixtures/alerts/{shared.name} differs"
