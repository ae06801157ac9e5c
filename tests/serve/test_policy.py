"""`ask` waits for a signed Approve click (journaled with who clicked); `record` changes nothing."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from keyresponse.serve import signatures
from tests.e2e.conftest import leaked
from tests.serve.conftest import Hooks, github_alert, gitleaks_alert


@pytest.fixture
def serve_extra() -> str:
    return "  rules:\n    - {sources: [github], action: ask}\n    - {sources: [generic], action: record}\n"


def _click(hooks: Hooks, delivery: str, action: str, secret: str | None = None, age: float = 0) -> int:
    payload = {"type": "block_actions", "user": {"id": "U123", "username": "alice"},
               "actions": [{"action_id": action, "value": delivery, "type": "button"}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time() - age))
    sig = signatures.slack_signature(secret or hooks.secrets["TEST_SLACK_SIGNING_SECRET"], ts, body)
    r = hooks.client.post(f"{hooks.server.url}/slack/interactions", content=body, headers={
        "content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
        "x-slack-signature": sig})
    return r.status_code


def test_ask_waits_for_a_signed_approval(hooks: Hooks) -> None:
    state = hooks.world.sandbox.state
    r = hooks.github(github_alert())
    assert (r.status_code, r.json()["action"]) == (202, "ask"), r.text
    delivery = r.json()["delivery"]
    hooks.settle()
    # the incident is opened (queued for the approval); nothing ran
    assert leaked(hooks.world)["live"]
    [queued] = hooks.serve_incidents()
    assert (queued["id"], queued["key"], queued["status"], queued["steps"]) == \
        (r.json()["incident"], "chatbot-prod", "queued", {})
    [asked] = [m for m in state.slack_messages if "Contain it now?" in m.get("text", "")]
    buttons = [e for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("approve", delivery), ("dismiss", delivery)]
    before = state.mutation_count
    assert _click(hooks, delivery, "approve", secret="forged") == 401
    # rightly signed, but over five minutes old: a replay of a captured click (Slack's documented limit)
    assert _click(hooks, delivery, "approve", age=5 * 60 + 30) == 401
    assert _click(hooks, delivery, "dismiss", age=3600) == 401
    hooks.settle()
    assert state.mutation_count == before and leaked(hooks.world)["live"]
    refused = [json.loads(line) for line in (hooks.world.dir / "serve.log").read_text().splitlines()
               if '"alert.refused"' in line]
    assert [(r["source"], r["reason"]) for r in refused] == [("slack", "bad_signature"), ("slack", "stale"),
                                                             ("slack", "stale")]
    assert not [r for r in hooks.deliveries() if r["event"] in ("approved", "dismissed")]
    assert _click(hooks, delivery, "approve") == 200
    hooks.settle()
    assert [(i["id"], i["status"]) for i in hooks.serve_incidents()] == [(queued["id"], "succeeded")]
    assert not leaked(hooks.world)["live"]
    approved = [r for r in hooks.deliveries() if r["event"] == "approved"]
    assert [(r["delivery"], r["by"]) for r in approved] == [(delivery, "alice")]
    assert _click(hooks, delivery, "approve") == 404  # decided once


def test_record_opens_an_incident_and_changes_nothing(hooks: Hooks) -> None:
    state = hooks.world.sandbox.state
    before = [m for m in state.mutations if m["service"] == "openai"]
    r = hooks.generic(gitleaks_alert(hooks.world.env["CHATBOT_PROD_OPENAI_KEY"]))
    assert (r.status_code, r.json()["action"]) == (202, "record"), r.text
    hooks.settle()
    assert [(i["key"], i["mode"], i["status"]) for i in hooks.serve_incidents()] == [("chatbot-prod", "plan", "planned")]
    assert [m for m in state.mutations if m["service"] == "openai"] == before
    assert leaked(hooks.world)["live"]


def test_slack_signature_is_the_documented_v0_basestring() -> None:
    """`v0=` + hex HMAC-SHA256(signing secret, "v0:{timestamp}:{body}"), recomputed by hand."""
    import hashlib
    import hmac

    from keyresponse.serve.signatures import Refused, verify_slack

    secret, body, now = "8f742231b10e8888abcd99yyyzzz85a5", b"token=x&payload=%7B%7D", 1_700_000_000.0
    ts = str(int(now))
    expected = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    assert signatures.slack_signature(secret, ts, body) == expected
    verify_slack({"x-slack-signature": expected, "x-slack-request-timestamp": ts}, body, secret, now=now)
    for headers, reason in (({"x-slack-signature": expected, "x-slack-request-timestamp": ts}, "stale"),
                            ({"x-slack-signature": expected[:-1] + ("1" if expected.endswith("0") else "0"), "x-slack-request-timestamp": ts}, None)):
        try:
            verify_slack(headers, body, secret, now=now + (301 if reason == "stale" else 0))
        except Refused as exc:
            assert exc.reason == (reason or "bad_signature")
        else:
            raise AssertionError("accepted")
