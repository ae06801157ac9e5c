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


def _click(hooks: Hooks, delivery: str, action: str, secret: str | None = None) -> int:
    payload = {"type": "block_actions", "user": {"id": "U123", "username": "alice"},
               "actions": [{"action_id": action, "value": delivery, "type": "button"}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
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
    assert leaked(hooks.world)["live"] and hooks.serve_incidents() == []
    [asked] = [m for m in state.slack_messages if "Contain it now?" in m.get("text", "")]
    buttons = [e for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("approve", delivery), ("dismiss", delivery)]
    before = state.mutation_count
    assert _click(hooks, delivery, "approve", secret="forged") == 401
    hooks.settle()
    assert state.mutation_count == before and leaked(hooks.world)["live"]
    assert _click(hooks, delivery, "approve") == 200
    hooks.settle()
    assert [(i["key"], i["status"]) for i in hooks.serve_incidents()] == [("chatbot-prod", "succeeded")]
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
