"""End to end: the real CLI in a subprocess, against the sandbox over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


@dataclass
class World:
    dir: Path
    sandbox: Any = field(repr=False)
    env: dict[str, str] = field(repr=False)  # holds credentials: never in a failure message
    seeded_keys: set[str] = field(default_factory=set, repr=False)

    @property
    def config(self) -> Path:
        return self.dir / "keyresponse.yaml"

    def kr(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "keyresponse", *args], cwd=cwd or self.dir, input=stdin,
            env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        )

    def incidents(self) -> list[dict[str, Any]]:
        out = self.kr("incidents", "--json")
        return list(json.loads(out.stdout))

    def everything_written(self, *texts: str) -> str:
        """Every file under the folder (journal, reports, env files excluded) plus given texts."""
        parts = list(texts)
        for p in (self.dir / ".keyresponse").rglob("*"):
            if p.is_file():
                parts.append(p.read_text(errors="replace"))
        parts.append(json.dumps(self.sandbox.state.slack_messages))
        return "\n".join(parts)


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> World:
    sandbox.write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update(sandbox.env)
    env.update({"NO_COLOR": "1", "PYTHONPATH": str(REPO)})
    return World(tmp_path, sandbox, env, {k["id"] for k in sandbox.state.openai_keys()})


def leaked(world: World) -> dict[str, Any]:
    truth = world.sandbox.state.truth
    return next(k for k in world.sandbox.state.openai_keys() if k["id"] == truth["leaked_key_id"])


def replacements(world: World) -> list[dict[str, Any]]:
    """Keys minted after the seed: the replacements keyresponse issued."""
    return [k for k in world.sandbox.state.openai_keys() if k["id"] not in world.seeded_keys]


def assert_restored(world: World) -> str:
    """Old key dead, exactly one live replacement, every target holding it. Returns its value."""
    state = world.sandbox.state
    assert not leaked(world)["live"], "the leaked key is still live"
    live = [k for k in replacements(world) if k["live"]]
    assert len(live) == 1, f"expected one live replacement, found {[k['id'] for k in live]}"
    value = state.openai_key_value(live[0]["id"])
    for rel in ("apps/chatbot/.env", "apps/worker/.env"):
        text = (world.dir / rel).read_text()
        assert f"OPENAI_API_KEY={value}" in text.replace('"', "").replace("'", ""), rel
    for scope in ("repo:acme/chatbot", "env:acme/chatbot:production", "org:acme"):
        assert state.github_secret_value(scope, "OPENAI_API_KEY") == value, scope
    assert state.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY")["value"] == value
    assert inventory_key_id(world) == live[0]["id"], "the inventory does not name the live replacement"
    return str(value)


def inventory_key_id(world: World, name: str = "chatbot-prod") -> str:
    import yaml

    return str(yaml.safe_load(world.config.read_text())["keys"][name]["key_id"])


def slack_threads(world: World) -> list[dict[str, Any]]:
    return [m for m in world.sandbox.state.slack_messages if not m.get("thread_ts")]
