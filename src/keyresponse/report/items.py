"""What failed, what to do next, and the guide's practices marked done or open.

Each function reads the sections `model.build` assembled; none of them looks at
raw journal records, so they stay easy to test one situation at a time.
"""

from __future__ import annotations

from typing import Any

from keyresponse.report import hunt
from keyresponse.report.sections import TARGET_OK


def failures(model: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in model["steps"]:
        if s["status"] == "failed":
            out.append({"what": f"step {s['id']} ({s['uses']}) failed", "detail": s["error"] or "", "hint": s["hint"]})
        elif s["status"] == "unfinished":
            out.append({"what": f"step {s['id']} ({s['uses']}) did not finish", "detail": "the run stopped during it",
                        "hint": None})
    for row in model["targets"]["rows"]:
        if row["status"] not in TARGET_OK:
            out.append({"what": f"target {row['target']} not updated", "detail": row["error"] or row["status"] or "",
                        "hint": None})
    for n in model["notifications"]:
        if not n["ok"]:
            out.append({"what": f"Slack notification failed ({n['event'] or n['step']})",
                        "detail": n["error"] or "", "hint": "tell the team by hand"})
    return out


def next_steps(model: dict[str, Any]) -> list[str]:
    inc, con, rep, tgt = model["incident"], model["containment"], model["replacement"], model["targets"]
    key, audit, exposure = model["key"], model["audit"], model["exposure"]
    out: list[str] = []
    ident = inc["id"] or "<incident id>"
    if inc["status"] in ("interrupted", "failed") and inc["mode"] != "plan":
        out.append(f"Finish the response: fix what failed, then run keyresponse resume {ident}.")
    rot = model.get("rotation") or {}
    if rot.get("mixed"):
        out.append(f"The old key stays live on purpose: {len(rot['on_old'])} target(s) still hold it "
                   f"({', '.join(rot['on_old'])}). Fix the cause, then keyresponse resume {ident}: the new key "
                   "goes there, is proven live, and only then is the old key revoked.")
    elif inc["mode"] != "plan" and not con["dead"] and rot.get("is"):
        out.append(f"The old key is not revoked yet: resume the rotation (keyresponse resume {ident}).")
    elif inc["mode"] != "plan" and not con["dead"]:
        where = f"key {key['key_id']}" if key.get("key_id") else "the leaked key"
        if key.get("project_id"):
            where += f" in project {key['project_id']}"
        out.append(f"The leaked key is not proven dead: revoke {where} in the provider's dashboard, "
                   "then probe it again.")
    for row in tgt["rows"]:
        if row["status"] not in TARGET_OK and not rot.get("mixed"):
            out.append(f"Put the new key into {row['target']} by hand, or fix the cause and resume.")
    if rep.get("kept_live"):
        out.append(f"Earlier replacement(s) {', '.join(rep['kept_live'])} are still live: an interrupted run "
                   f"had deployed them. Once every target holds the new key, keyresponse resume {ident} "
                   "revokes them (key.retire); or revoke them by hand.")
    if rep["status"] == "applied" and rep["probe_result"] not in (None, "live", "restricted"):
        out.append("The new key did not answer as live: check it before trusting the restore.")
    anomalies = audit.get("anomalies") or []
    if anomalies:
        cost = audit.get("estimated_cost_usd")
        money = f" (estimated ${cost:,.2f})" if isinstance(cost, (int, float)) else ""
        out.append(f"Review the {len(anomalies)} anomalous hour(s) of usage{money}; "
                   "ask the provider's support about charges from the leak.")
    out.extend(hunt.next_steps(model.get("hunt") or {}))
    for f in exposure.get("findings") or []:
        out.append(f"Remove the key from {f.get('location') or f.get('url') or f.get('source')} "
                   "and from its history; the copy is dead but still a finding.")
    if any(not n["ok"] for n in model["notifications"]):
        out.append("Slack was not told everything: post the summary in the incident channel by hand.")
    if not out:
        out.append("Nothing is left to do for this key: close the ticket and work through the action items.")
    return out


def action_items(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The guide's four practices, each done or open from what this run knows."""
    rep, audit, exposure, inc = model["replacement"], model["audit"], model["exposure"], model["incident"]
    key_name = inc["key"] or "KEY"
    restricted = rep["probe_result"] == "restricted"
    findings = exposure.get("findings") or []
    return [
        {
            "title": "Restrict the key's scope",
            "done": restricted,
            "detail": "the new key answers as restricted: it cannot call what it does not need" if restricted
            else "give the new key only the permissions its service uses (restricted key, one project, "
                 "its own service account)",
        },
        {
            "title": "Keep keys out of code",
            "done": exposure.get("ran", False) and exposure.get("status") == "applied" and not findings,
            "detail": (f"the scan found {len(findings)} copy(ies): remove them and add secret scanning "
                       "to CI and pre-commit" if findings else
                       "the exposure scan found no copies" if exposure.get("ran") and exposure.get("status") == "applied"
                       else "no exposure scan in this run: scan the repos and add secret scanning"),
        },
        *prevention_items(model),
        {
            "title": "Monitor usage",
            "done": bool(audit.get("ran")) and audit.get("status") == "applied",
            "detail": f"usage audited from {audit.get('window_start')} to {audit.get('window_end')}"
            if audit.get("ran") and audit.get("status") == "applied"
            else "no usage audit in this run: set usage alerts and budget limits per project",
        },
        {
            "title": "Rotate on a schedule",
            "done": inc["playbook"] == "rotate" and inc["status"] == "succeeded",
            "detail": "this was a scheduled rotation" if inc["playbook"] == "rotate"
            else (f"replace the admin key on a schedule with keyresponse run leaked-admin-key --key {key_name} "
                  f"(it deploys the new one before revoking the old), let admin keys expire "
                  f"(keys.{key_name}.admin.expires_in_seconds), and run a weekly keyresponse drill in CI")
            if inc.get("admin_key")
            else f"schedule keyresponse run rotate --key {key_name} (e.g. every 90 days) "
                 "and a weekly keyresponse drill in CI",
        },
    ]


def prevention_items(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixes for how this key leaked (see exposure/cause.py), with what the scan checked."""
    leak = model.get("leak") or {}
    return [dict(item) for item in leak.get("prevention") or [] if isinstance(item, dict)]
