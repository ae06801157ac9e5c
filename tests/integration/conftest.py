"""What the integration tests share: the sandbox's inventory and credentials, set up for
one test, and running a few steps as a playbook."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from keyresponse import http
from keyresponse.engine import Engine, Mode, RunResult
from keyresponse.inventory import load_inventory
from keyresponse.playbook import coerce_inputs, load_playbook


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


def run_steps(config: Path, steps: str, inputs: dict[str, Any] | None = None, *, key: str | None = "chatbot-prod",
              declare: str = "", mode: Mode = Mode.APPLY) -> RunResult:
    """Run a playbook of `steps` (YAML list items) with the inventory at `config`; `declare`
    adds its inputs section."""
    book = config.parent / "book.yaml"
    book.write_text("name: t\n" + (f"inputs:\n{textwrap.indent(declare, '  ')}\n" if declare else "")
                    + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  "))
    pb = load_playbook(book)
    return Engine(load_inventory(config), mode=mode, assume_yes=True).start(pb, coerce_inputs(pb, inputs or {}), key)
