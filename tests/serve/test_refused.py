"""What is refused or ignored changes nothing: one receiver, every bad request in turn."""

from __future__ import annotations

import json
import time

from tests.serve.conftest import Hooks, gitguardian_alert, github_alert, gitleaks_alert


def test_bad_requests_are_refused_and_change_nothing(hooks: Hooks) -> None:
    state = hooks.world.sandbox.state
    before = state.mutation_count
    body = json.dumps(github_alert()).encode()
    cases = {
        "bad signature": (hooks.github(github_alert(), secret="not-the-secret"), 401, "bad_signature"),
        "unsigned": (hooks.post("github", body, {"x-github-event": "secret_scanning_alert"}), 401, "unsigned"),
        "stale timestamp": (hooks.gitguardian(gitguardian_alert(), timestamp=time.time() - 3600), 401, "stale"),
        "gitguardian unsigned": (hooks.post("gitguardian", body, {"timestamp": str(int(time.time()))}), 401,
                                 "unsigned"),
        "wrong bearer": (hooks.post("generic", body, {"authorization": "Bearer nope"}), 401, "bad_signature"),
        "form body": (hooks.client.post(f"{hooks.server.url}/webhooks/github", content=b"payload=%7B%7D",
                                        headers={"content-type": "application/x-www-form-urlencoded"}),
                      415, "content_type"),
        "20 MB": (hooks.github(None, body=b"[" + b"0," * (10 << 20) + b"0]"), 413, "too_large"),
        "invalid JSON": (hooks.github(None, body=b'{"action": "created", "alert": '), 400, "invalid_json"),
        "wrong shape": (hooks.github(None, body=b'{"action": "created", "alert": "x", "repository": {}}'),
                        422, "bad_shape"),
        "unknown secret type": (hooks.github(github_alert(secret_type="adafruit_io_key")), 200,
                                "unknown_secret_type"),
        "unknown GitGuardian detector": (hooks.gitguardian(gitguardian_alert(detector="generic_password")), 200,
                                         "unknown_secret_type"),
        "resolved alert": (hooks.github(github_alert(action="resolved")), 200, "not_acting"),
        "unknown repository": (hooks.github(github_alert(repo="elsewhere/other")), 200, "unidentified"),
    }
    for what, (response, status, reason) in cases.items():
        assert (what, response.status_code, response.json().get("reason")) == (what, status, reason), response.text
    ping = hooks.github({"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    assert (ping.status_code, ping.json()) == (200, {"status": "pong"})
    hooks.settle()
    assert state.mutation_count == before, state.mutations[before:]
    assert hooks.serve_incidents() == []
    assert hooks.deliveries() == []
    metrics = hooks.client.get(f"{hooks.server.url}/metrics").text
    assert 'keyresponse_alerts_refused_total{reason="bad_signature",source="github"} 1' in metrics
    assert 'keyresponse_alerts_refused_total{reason="too_large",source="github"} 1' in metrics
    log = (hooks.world.dir / "serve.log").read_text().splitlines()
    assert all(json.loads(line) for line in log)
    assert not any(v in line for line in log for v in hooks.secrets.values())


def test_replayed_delivery_is_refused_and_changes_nothing_more(hooks: Hooks) -> None:
    state = hooks.world.sandbox.state
    first = hooks.github(github_alert(), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert first.status_code == 202, first.text
    hooks.settle()
    after_first = state.mutation_count
    again = hooks.github(github_alert(), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    hooks.settle()
    assert state.mutation_count == after_first
    assert len(hooks.serve_incidents()) == 1


def test_healthz(hooks: Hooks) -> None:
    assert hooks.client.get(f"{hooks.server.url}/healthz").json() == {"ok": True}


def test_generic_payload_with_a_value_is_never_logged(hooks: Hooks) -> None:
    value = hooks.world.env["CHATBOT_PROD_OPENAI_KEY"]
    r = hooks.generic(gitleaks_alert(value, rule="aws-access-key"))  # a type no rule covers
    assert r.json()["reason"] == "unknown_secret_type"
    r = hooks.generic(gitleaks_alert(value) + gitleaks_alert(value[::-1]))
    assert r.json()["reason"] == "several_secrets"
    hooks.settle()
    assert value not in (hooks.world.dir / "serve.log").read_text()
