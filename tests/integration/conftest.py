"""What the integration tests share: the sandbox's inventory and credentials, set up for one test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyresponse import http


@pytest.fixture
def sandbox_config(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox's inventory written to tmp_path (its path is returned) and its credentials
    in the environment; no crash point inherited from the environment."""
    sandbox.write_config(tmp_path)
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEYRESPONSE_CRASH_AT", raising=False)
    return tmp_path / "keyresponse.yaml"


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries that wait milliseconds, not seconds."""
    monkeypatch.setattr(http, "DEFAULT_POLICY", http.RetryPolicy(attempts=4, base=0.02, cap=0.1))
