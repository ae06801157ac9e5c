"""Short digests of the report model for notifications: what Slack messages say.

The model is built from the journal (report.model); these pick the few facts a
person on a phone needs. Message layout and escaping live in keyresponse.slack.
"""

from __future__ import annotations

from typing import Any

from keyresponse.report import times
from keyresponse.report.sections import TARGET_OK


def facts(model: dict[str, Any], *, event: str, current_step: str | None = None, severity: str | None = None,
          redacted_value: str | None = None, project: str | None = None,
          report: str | None = None) -> dict[str, Any]:
    """What the messages say, from the report model (the journal) plus what only the running step knows."""
    steps = [s for s in model["steps"] if s["id"] != current_step and s["uses"] != "notify.slack"
             and s["status"] != "unfinished"]
    failed = [s for s in steps if s["status"] == "failed"]
    if event == "closed":
        status = "needs attention" if failed or model["incident"]["status"] == "failed" else "resolved"
    else:
        status = "needs attention" if failed else "in progress"
    key, con, rep, tgt, audit = (model[k] for k in ("key", "containment", "replacement", "targets", "audit"))
    highlights = []
    if con["dead"]:
        highlights.append("old key proven dead")
    elif con["revoke_status"] == "applied":
        highlights.append("old key revoked")
    if rep.get("redacted_value"):
        highlights.append(f"new key {rep['redacted_value']}")
    if tgt["ran"]:
        highlights.append(f"targets {tgt['ok']}/{len(tgt['rows'])} on the new key")
    if audit.get("anomalies"):
        highlights.append(f"{len(audit['anomalies'])} anomalous hour(s)")
    summary = model["summary"]
    cost = audit.get("estimated_cost_usd")
    return {
        "status": status, "incident_id": model["incident"]["id"],
        "severity": severity or model["incident"]["severity"],
        "key_name": key.get("inventory_name") or key.get("name"), "provider_name": key.get("name"),
        "redacted_value": key.get("redacted_value") or redacted_value,
        "project": key.get("project_id") or project,
        "user": model["incident"]["user"], "host": model["incident"]["host"],
        "playbook": model["incident"]["playbook"], "highlights": highlights,
        "rotation": bool(model.get("rotation", {}).get("is")),
        "admin_key": bool(model["incident"].get("admin_key")),
        "steps": [{**s, "duration_text": _duration(s.get("duration"))} for s in steps],
        "time_to_contain": summary["time_to_contain_text"], "time_to_restore": summary["time_to_restore_text"],
        "targets": f"{tgt['ok']}/{len(tgt['rows'])} on the new key" if tgt["ran"] else "no deploy step",
        "cost": f"${cost:,.2f}" if isinstance(cost, (int, float)) else None,
        "problems": [f"{f['what']}: {f['detail']}" if f["detail"] else f["what"] for f in model["failures"]],
        "report": report,
    }


def step_detail(model: dict[str, Any], step: dict[str, Any]) -> str | None:
    """What a finished step established, in a few words, from the report model."""
    con, rep, tgt, audit, exp = (model[k] for k in ("containment", "replacement", "targets", "audit", "exposure"))
    uses, sid = step.get("uses"), step.get("id")
    if step.get("status") != "applied":
        return None
    if uses == "key.revoke":
        return "old key was already gone" if con.get("already_gone") else "old key revoked"
    if uses == "key.probe" and sid == con.get("probe_step"):
        return "old key proven dead" if con["dead"] else f"old key answers: {con.get('probe_result')}"
    if uses == "key.probe" and sid == rep.get("probe_step"):
        return f"new key answers: {rep.get('probe_result')}"
    if uses == "key.issue":
        return f"new key {rep.get('redacted_value') or rep.get('key_id')}"
    if uses == "targets.deploy" and tgt["ran"]:
        failed = [r["target"] for r in tgt["rows"] if r["status"] not in TARGET_OK]
        return f"{tgt['ok']}/{len(tgt['rows'])} targets on the new key" + (f"; failed: {', '.join(map(str, failed))}"
                                                                       if failed else "")
    if uses == "key.audit" and audit.get("ran"):
        cost = audit.get("estimated_cost_usd")
        text = f"{len(audit.get('anomalies') or [])} anomalous hour(s)"
        text += f", estimated ${cost:,.2f}" if isinstance(cost, (int, float)) else ""
        new = audit.get("new_models") or []
        return text + (f"; models new to this key: {', '.join(map(str, new))}" if new else "")
    if uses == "exposure.scan" and exp.get("ran"):
        n = len(exp.get("findings") or [])
        return f"found in {n} place(s)" if n else "no copies found"
    return None


def _duration(seconds: Any) -> str:
    return times.duration(seconds) if isinstance(seconds, (int, float)) else ""
