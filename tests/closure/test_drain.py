"""`rotate` drains the old key before it revokes it, on the sandbox's fast clock."""

from __future__ import annotations

from typing import Any

from tests.closure.conftest import events, stop_unlisted
from tests.e2e.conftest import World, leaked


def _steps(records: list[dict[str, Any]], event: str) -> list[str]:
    return [r["step"] for r in records if r["event"] == event]


def test_drain_holds_the_revoke_while_an_unlisted_consumer_uses_the_old_key(rotation: World) -> None:
    old_id = rotation.sandbox.state.truth["leaked_key_id"]
    run = rotation.kr("run", "rotate", "--key", "chatbot-prod", "--yes")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "still in use after 60m (`max_wait`)" in out and "it was not revoked" in out
    assert "unknown consumer" in out and "not in the inventory" in out
    assert "old key: 3 req/min" in out  # only the unlisted consumer is left on it
    assert leaked(rotation)["live"], "the old key was revoked although something still used it"
    (incident,) = rotation.incidents()
    records = events(rotation, incident["id"])
    finished = {r["step"]: r for r in records if r["event"] == "step.finished"}
    assert finished["drain"]["status"] == "failed"
    assert "revoke" not in _steps(records, "step.started")
    drain = finished["drain"]["outputs"]
    assert drain["drained"] is False and drain["key_id"] == old_id and drain["new_rate"] > 0
    slack = [m["text"] for m in rotation.sandbox.state.slack_messages if "old key" in (m.get("text") or "")]
    assert any("Draining the old key" in t for t in slack) and any("not revoked" in t for t in slack)

    # the unlisted consumer is found and moved: resumed, the drain ends after the quiet period
    stop_unlisted(rotation)
    again = rotation.kr("resume", incident["id"], "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    records = events(rotation, incident["id"])
    order = [(r["event"], r["step"]) for r in records if r.get("step") in ("drain", "revoke")
             and r["event"] in ("step.started", "step.finished")]
    assert order[-3:] == [("step.finished", "drain"), ("step.started", "revoke"), ("step.finished", "revoke")]
    drained = [r for r in records if r["event"] == "step.finished" and r["step"] == "drain"][-1]
    assert drained["status"] == "applied" and drained["outputs"]["drained"] is True
    # it waited out the quiet period after the last use, which the fast clock made seconds
    assert drained["outputs"]["old_last_used"] is not None
    assert not leaked(rotation)["live"]


def test_no_drain_revokes_at_once(rotation: World) -> None:
    run = rotation.kr("run", "rotate", "--key", "chatbot-prod", "--yes", "--no-drain")
    assert run.returncode == 0, run.stdout + run.stderr
    (incident,) = rotation.incidents()
    records = events(rotation, incident["id"])
    drain = [r for r in records if r["event"] == "step.finished" and r["step"] == "drain"]
    assert drain and drain[-1]["status"] == "skipped"
    assert not leaked(rotation)["live"]
