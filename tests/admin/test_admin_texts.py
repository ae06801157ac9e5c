"""What the report and Slack say about an admin key: built from a journal alone (no
sandbox), the same model `keyresponse report ID` renders."""

from __future__ import annotations

from typing import Any

from keyresponse import slack
from keyresponse.report import digest
from keyresponse.report import model as report_model

STEPS = [("find", "admin_key.find"), ("open", "notify.slack"), ("issue", "admin_key.issue"),
         ("deploy", "targets.deploy"), ("use", "admin_key.use"), ("revoke", "admin_key.revoke"),
         ("dead", "admin_key.probe"), ("hunt", "key.hunt"), ("report", "report.render")]


def _records() -> list[dict[str, Any]]:
    key = {"key_id": "key_leakedadmin0001", "name": "keyresponse-admin", "redacted_value": "sk-admin-AB***yz",
           "owner_type": "user", "owner_id": "user-1", "project_id": None}
    t = "2025-01-01T00:00:0{}Z"
    return [
        {"event": "incident.opened", "t": t.format(0), "playbook": "leaked-admin-key", "key": "org-admin",
         "mode": "apply", "inputs": {"key": "org-admin", "severity": "critical"},
         "steps": [{"id": i, "uses": u} for i, u in STEPS]},
        {"event": "step.started", "t": t.format(1), "step": "find", "uses": "admin_key.find"},
        {"event": "step.finished", "t": t.format(2), "step": "find", "uses": "admin_key.find", "status": "applied",
         "outputs": key},
        {"event": "step.started", "t": t.format(3), "step": "revoke", "uses": "admin_key.revoke"},
        {"event": "step.finished", "t": t.format(4), "step": "revoke", "uses": "admin_key.revoke",
         "status": "applied", "outputs": {**key, "already_gone": False}},
        {"event": "incident.finished", "t": t.format(5), "status": "succeeded"},
    ]


def test_the_report_and_slack_call_an_admin_key_an_organization_admin_key() -> None:
    model = report_model.build(_records(), incident_id="20250101-000000-abcd")
    assert model["summary"]["what"].startswith("Leaked admin key keyresponse-admin"), model["summary"]["what"]
    details = " ".join(str(i["detail"]) for i in model["action_items"])
    assert "rotate --key" not in details, details
    assert "leaked-admin-key --key org-admin" in details and "expires_in_seconds" in details
    facts = digest.facts(model, event="opened")
    root = slack.root_message(facts)
    assert "unknown project" not in root["text"] and "organization admin key" in root["text"], root["text"]
    assert root["text"].startswith("[CRITICAL] Leaked admin key org-admin")
    assert root["blocks"][0]["text"]["text"] == "Leaked admin key · CRITICAL"
    shown = str(root["blocks"])
    assert "unknown project" not in shown and "organization admin key" in shown
