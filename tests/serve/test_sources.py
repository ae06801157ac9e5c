"""A valid GitGuardian and a valid generic delivery each open exactly one incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import World
from tests.serve.conftest import Hooks, gitguardian_alert, gitleaks_alert


def _key(world: World, name: str) -> dict[str, Any]:
    return next(k for k in world.sandbox.state.openai_keys() if k["name"] == name)


def test_gitguardian_and_generic(hooks: Hooks) -> None:
    world = hooks.world
    r = hooks.gitguardian(gitguardian_alert())
    assert r.status_code == 202, r.text
    # a value no inventory key holds: the provider finds it by value, and it is revoked all the same
    stray = world.sandbox.state.openai_key_value(_key(world, "bob-dev")["id"])
    r = hooks.generic(gitleaks_alert(stray))
    assert r.status_code == 202, r.text
    hooks.settle()
    incidents = hooks.serve_incidents()
    assert sorted((i["key"] or "", i["status"]) for i in incidents) == [("", "succeeded"), ("chatbot-prod", "succeeded")]
    assert not _key(world, "chatbot-prod")["live"]
    assert not _key(world, "bob-dev")["live"]
    unknown = next(i for i in incidents if i["key"] is None)
    report = next(p for p in Path(unknown["dir"]).rglob("*.md")).read_text()
    assert "no targets" in report.lower() or "no target" in report.lower(), report[:2000]
    assert stray not in world.everything_written((world.dir / "serve.log").read_text())


def test_the_sandbox_sends_signed_webhooks(hooks: Hooks) -> None:
    import httpx

    base = hooks.world.sandbox.base_url
    for kind, secret in (("github", "TEST_GITHUB_WEBHOOK_SECRET"), ("gitguardian", "TEST_GITGUARDIAN_TOKEN")):
        r = httpx.post(f"{base}/_sandbox/webhooks/send", timeout=30, json={
            "kind": kind, "url": f"{hooks.server.url}/webhooks/{kind}", "secret": hooks.secrets[secret]})
        assert r.json()["status"] == 202, r.text
        hooks.settle()
    # the second alert is for the same key, after the first incident ended: it opens a second one
    assert [i["key"] for i in hooks.serve_incidents()] == ["chatbot-prod", "chatbot-prod"]
