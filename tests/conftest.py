from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.helpers.actions  # noqa: F401  (registers the test-only actions)

pytest_plugins = ["tests.helpers.sandbox_fixture"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the team's shared folder, beside the repository when present
SPECS = REPO / "tests" / "specs"  # the API descriptions the tests validate against (see its README)
ALERT_FIXTURES = REPO / "tests" / "fixtures" / "alerts"  # scanners' published alert payloads


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder as the current directory, with no inventory and no stray env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYRESPONSE_CONFIG", raising=False)
    monkeypatch.delenv("KEYRESPONSE_CRASH_AT", raising=False)
    return tmp_path


def fake_key(label: str = "test") -> str:
    """An obviously fake key built at run time (never a committed literal)."""
    import secrets

    return "sk-" + "proj-" + f"FAKE{label}" + secrets.token_urlsafe(24).replace("-", "x")


@pytest.fixture
def fake_secret_value(monkeypatch: pytest.MonkeyPatch) -> str:
    value = fake_key()
    monkeypatch.setenv("TEST_FAKE_SECRET", value)
    return value


os.environ.setdefault("NO_COLOR", "1")
