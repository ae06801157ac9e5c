"""`keyresponse drill` proves a response would work, and changes nothing doing it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import World


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and ".keyresponse" not in p.parts}


def _drill(world: World, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    before_files = _fingerprint(world.dir)
    before = world.sandbox.state.mutation_count
    out = world.kr("drill", *args, "--json", env=env)
    # The one write a drill makes is its summary in the drill channel; nothing else changes.
    changes = [f"{m['service']} {m['method']} {m['path']}" for m in world.sandbox.state.mutations[before:]]
    summaries = [m for m in world.sandbox.state.slack_messages if m["channel_name"] == "keyresponse-drills"]
    assert changes == ["slack POST /chat.postMessage"] * len(summaries)
    assert _fingerprint(world.dir) == before_files
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["event"] == "result"  # as every --json command ends
    return out.returncode, result, out.stderr


def test_healthy_sandbox_passes_for_every_key(world: World) -> None:
    rc, result, err = _drill(world, "--all")
    assert rc == 0, json.dumps(result, indent=1)[-3000:] + err[-2000:]
    assert result["ok"] and len(result["drills"]) == 4  # the three project keys and org-admin
    history = world.kr("drill", "--history")
    assert history.returncode == 0 and "chatbot-prod" in history.stdout and "✔" in history.stdout


def _problems(result: dict[str, Any]) -> str:
    return "\n".join(p for d in result["drills"] for p in d["problems"])


def test_wrong_admin_key_fails_and_names_the_fix(world: World) -> None:
    rc, result, _ = _drill(world, "--key", "chatbot-prod", env={"OPENAI_ADMIN_KEY": "sk-admin-wrong-" + "0" * 20})
    assert rc == 1
    problems = _problems(result)
    assert "OPENAI_ADMIN_KEY" in problems and "fix" in problems


def test_github_token_without_access_fails_and_names_the_fix(world: World) -> None:
    text = world.config.read_text().replace(
        "      - {kind: github, org: acme, secret: OPENAI_API_KEY}",
        "      - {kind: github, org: acme, secret: OPENAI_API_KEY}\n"
        "      - {kind: github, repo: acme/billing-api, secret: OPENAI_API_KEY}")
    world.config.write_text(text)
    rc, result, _ = _drill(world, "--key", "chatbot-prod", env={"GITHUB_TOKEN": world.sandbox.env["GITHUB_TOKEN_LIMITED"]})
    assert rc == 1
    problems = _problems(result)
    assert "acme/billing-api" in problems and "fix" in problems
    assert "acme/chatbot:" not in problems  # the targets it can reach are fine


def test_read_only_env_file_fails_and_names_the_fix(world: World) -> None:
    env_file = world.dir / "apps" / "chatbot" / ".env"
    env_file.chmod(0o444)
    try:
        rc, result, _ = _drill(world, "--key", "chatbot-prod")
    finally:
        env_file.chmod(0o600)
    assert rc == 1
    problems = _problems(result)
    assert "apps/chatbot/.env" in problems and "read-only" in problems.lower() and "fix" in problems


def test_a_read_only_inventory_does_not_fail_the_drill(world: World) -> None:
    # mounted read-only (a ConfigMap, say): the response works; only its key_id would need a hand edit
    world.config.chmod(0o444)
    try:
        rc, result, _ = _drill(world, "--key", "chatbot-prod")
    finally:
        world.config.chmod(0o644)
    assert rc == 0, _problems(result)


def test_unreachable_slack_fails_the_drill(world: World) -> None:
    world.sandbox.add_fault(service="slack", method="*", path="*", kind="status", status=503, count=None)
    rc, result, _ = _drill(world, "--key", "chatbot-prod")
    assert rc == 1 and "open" in _problems(result)
