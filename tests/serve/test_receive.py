"""Deliveries over a real socket: each valid one opens exactly one incident."""

from __future__ import annotations

from tests.e2e.conftest import leaked
from tests.serve.conftest import Hooks, github_alert


def test_github_alert_contains_the_key(hooks: Hooks) -> None:
    r = hooks.github(github_alert())
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    hooks.settle()
    incidents = hooks.serve_incidents()
    assert [(i["key"], i["status"]) for i in incidents] == [("chatbot-prod", "succeeded")]
    assert not leaked(hooks.world)["live"]
