"""The incident report model, built from the incident's journal alone.

Nothing here reads the inventory, the playbook or a service: `keyresponse report ID`
must re-render any incident at any time, finished, failed or cut short. Every step
may be missing, failed or unfinished, so each section says what is known and
marks the rest unknown rather than guessing. The model is plain JSON data; it is
`report.json` as it stands and the context of the Markdown and HTML templates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keyresponse.report import closure, hunt, items, sections, times
from keyresponse.report.sections import TARGET_OK
from keyresponse.report.timeline import timeline

SCHEMA = "keyresponse.report/1"
DEFAULT_SEVERITY = "high"  # a leaked live key is high until someone says otherwise


# actions whose outputs fill the sections of another's (an admin key's find, revoke, probe and mint)
READS_AS = {"admin_key.find": "key.find", "admin_key.revoke": "key.revoke", "admin_key.probe": "key.probe",
            "admin_key.issue": "key.issue"}


class Steps:
    """The journal folded into one entry per step id, in the order steps first started."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        for r in records:
            sid = r.get("step")
            if sid and r.get("event") == "step.note" and sid in self.by_id:
                self.by_id[sid]["notes"].append(r)
            if not sid or r.get("event") not in ("step.started", "step.finished"):
                continue
            step = self.by_id.setdefault(sid, {
                "id": sid, "uses": r.get("uses") or "", "status": "unfinished", "attempts": 0,
                "started_at": r.get("t"), "finished_at": None, "duration": None, "summary": "",
                "outputs": {}, "error": None, "hint": None, "notes": [],
            })
            step["uses"] = r.get("uses") or step["uses"]
            if r["event"] == "step.started":
                step["attempts"] += 1
                if step["finished_at"]:  # a resume ran it again: the earlier result is history
                    step.update(status="unfinished", finished_at=None, outputs={}, error=None, hint=None)
            else:
                outputs = r.get("outputs")
                step.update(
                    status=r.get("status") or "unknown", finished_at=r.get("t"), duration=r.get("duration"),
                    summary=r.get("summary") or "", outputs=outputs if isinstance(outputs, dict) else {},
                    error=r.get("error"), hint=r.get("hint"),
                )

    def all(self) -> list[dict[str, Any]]:
        return list(self.by_id.values())

    def of(self, uses: str) -> list[dict[str, Any]]:
        return [s for s in self.by_id.values() if READS_AS.get(s["uses"], s["uses"]) == uses]

    def last(self, uses: str, *, applied: bool = False) -> dict[str, Any] | None:
        found = [s for s in self.of(uses) if s["status"] == "applied" or not applied]
        return found[-1] if found else None


def build(
    records: Iterable[dict[str, Any]],
    *,
    incident_id: str | None = None,
    incident_dir: str | None = None,
    running: bool = False,
    rendered_at: str | None = None,
    current_step: str | None = None,
) -> dict[str, Any]:
    """`current_step` is the step doing the building (report.render, notify.slack): it
    has not finished because it is running, which is not a fact about the incident."""
    records = [r for r in records if isinstance(r, dict) and "event" in r]
    opened = next((r for r in records if r["event"] == "incident.opened"), {})
    steps = Steps(records)
    if current_step and steps.by_id.get(current_step, {}).get("status") == "unfinished":
        del steps.by_id[current_step]
    inputs: dict[str, Any] = opened["inputs"] if isinstance(opened.get("inputs"), dict) else {}
    incident = _incident(records, opened, inputs, incident_id, incident_dir, running, rendered_at)
    model: dict[str, Any] = {
        "schema": SCHEMA,
        "incident": incident,
        "key": sections.key(steps, opened),
        "containment": sections.containment(steps),
        "replacement": sections.replacement(steps),
        "targets": sections.targets(steps),
        "audit": sections.audit(steps),
        "hunt": hunt.section(steps),
        "exposure": sections.exposure(steps),
        "closure": closure.section(records, steps),
        "notifications": sections.notifications(steps),
        "steps": [_step_row(s) for s in steps.all()],
        "warnings": [
            {"t": times.iso(r.get("t")), "step": r.get("step"), "message": str(r.get("message", ""))}
            for r in records if r["event"] == "step.warning"
        ],
        "timeline": timeline(records),
    }
    model["leak"] = sections.how_it_leaked(model["exposure"], model["audit"])
    model["rotation"] = _rotation(opened, model)
    model["summary"] = _summary(model, inputs, [r for r in records if r["event"] == "approval.answered"])
    model["failures"] = items.failures(model)
    model["next_steps"] = items.next_steps(model)
    model["action_items"] = items.action_items(model)
    return model


def _incident(records: list[dict[str, Any]], opened: dict[str, Any], inputs: dict[str, Any],
              incident_id: str | None, incident_dir: str | None, running: bool,
              rendered_at: str | None) -> dict[str, Any]:
    status = "running" if running else "interrupted"
    finished_at = None
    for r in records:
        if r["event"] == "incident.finished":
            status, finished_at = str(r.get("status") or "unknown"), r.get("t")
        elif r["event"] == "incident.resumed":
            status, finished_at = ("running" if running else "interrupted"), None
    if not opened:
        status = "unknown" if not records else status
    return {
        "id": incident_id, "dir": incident_dir, "playbook": opened.get("playbook"),
        "key": opened.get("key"), "mode": opened.get("mode"), "user": opened.get("user"),
        "host": opened.get("host"), "version": opened.get("version"),
        "opened_at": times.iso(opened.get("t")), "finished_at": times.iso(finished_at),
        "status": status, "severity": str(inputs.get("severity") or DEFAULT_SEVERITY),
        # a secret input is journaled as its mask; the report shows only plain inputs
        "inputs": {k: v for k, v in inputs.items() if not (isinstance(v, dict) and "$secret" in v)},
        "resumed": sum(1 for r in records if r["event"] == "incident.resumed"),
        "rendered_at": times.iso(rendered_at),
        # an organization admin key's response (leaked-admin-key): no project, its own next steps
        "admin_key": any(str(s.get("uses") or "").startswith("admin_key.") for s in opened.get("steps") or []
                         if isinstance(s, dict)) or any(str(r.get("uses") or "").startswith("admin_key.")
                                                        for r in records if r["event"] == "step.started"),
    }


def _step_row(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in ("id", "uses", "status", "attempts", "duration", "summary", "error", "hint")} | {
        "started_at": times.iso(s["started_at"]), "finished_at": times.iso(s["finished_at"]),
    }


def _summary(model: dict[str, Any], inputs: dict[str, Any], approvals: list[dict[str, Any]]) -> dict[str, Any]:
    inc, key, con, tgt = model["incident"], model["key"], model["containment"], model["targets"]
    reported_at = inc["opened_at"]
    audit = model["audit"]
    leaked_at, leaked_at_source = times.iso(inputs.get("leaked_at")), "reported"
    if leaked_at is None and times.iso(audit.get("leak_time")):
        leaked_at, leaked_at_source = times.iso(audit.get("leak_time")), "audit"
    if leaked_at is None and times.iso(audit.get("first_anomalous_hour")):
        # no one said when it leaked: the usage says when abuse began, which is when it mattered
        leaked_at, leaked_at_source = times.iso(audit.get("first_anomalous_hour")), "first anomalous hour"
    ttc = times.seconds_between(reported_at, con["contained_at"])
    # time at the confirmation prompt is a person reading it, not the response being slow
    waits = [float(r["wait"]) for r in approvals if isinstance(r.get("wait"), (int, float))]
    approval_wait = sum(waits) if waits else None
    if ttc is not None and waits:
        before = [float(r["wait"]) for r in approvals if isinstance(r.get("wait"), (int, float))
                  and (times.seconds_between(r.get("t"), con["contained_at"]) or 0.0) >= 0]
        ttc = max(0.0, ttc - sum(before))
    ttr = times.seconds_between(con["contained_at"], tgt["restored_at"])
    # rotate restores before it revokes: no time without the key at all
    if ttr is not None and ttr < 0:
        ttr = 0.0
    name = key.get("name") or key.get("inventory_name") or "unknown key"
    kind = "admin key" if inc.get("admin_key") else "API key"
    what = f"{'Rotation of' if model['rotation']['is'] and not inc.get('admin_key') else 'Leaked'} {kind} {name}"
    if key.get("redacted_value"):
        what += f" ({key['redacted_value']})"
    if key.get("project_id"):
        what += f" in project {key['project_id']}"
    outcome = _outcome(model)
    return {
        "what": what, "severity": inc["severity"], "status": inc["status"], "outcome": outcome,
        "leaked_at": leaked_at, "leaked_at_source": leaked_at_source if leaked_at else None,
        "reported_at": reported_at,
        "contained_at": con["contained_at"], "restored_at": tgt["restored_at"],
        "time_to_contain": ttc, "time_to_contain_text": times.duration(ttc),
        "approval_wait": approval_wait, "approval_wait_text": times.duration(approval_wait),
        "time_to_restore": ttr, "time_to_restore_text": times.duration(ttr),
        "exposure_window_text": times.duration(times.seconds_between(leaked_at, con["contained_at"])),
    }


def _rotation(opened: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """A rotation deploys before it revokes: while a target fails, the old key stays live
    on purpose, and the report says which targets hold which key."""
    order = [s.get("uses") for s in opened.get("steps") or [] if isinstance(s, dict)]
    if order:
        is_rotation = ("targets.deploy" in order and "key.revoke" in order
                       and order.index("key.revoke") > order.index("targets.deploy"))
    else:  # journals written before the step order was recorded
        is_rotation = opened.get("playbook") == "rotate"
    rows = model["targets"]["rows"]

    def written(r: dict[str, Any]) -> bool:  # written, then verify or restart failed: it holds the new key
        return r["status"] in TARGET_OK or str(r.get("error") or "").startswith("written")

    on_new = [r["target"] for r in rows if written(r)]
    on_old = [r["target"] for r in rows if not written(r)]
    return {"is": is_rotation, "mixed": bool(is_rotation and on_old and not model["containment"]["dead"]),
            "on_new": on_new, "on_old": on_old}


def _outcome(model: dict[str, Any]) -> str:
    """The state of the world, not of the run: a report rendered mid-run (the usual
    `report` step) can already say the key is dead and every target restored."""
    inc, con, tgt = model["incident"], model["containment"], model["targets"]
    if any(s["status"] == "failed" for s in model["steps"]) or inc["status"] == "failed":
        return "needs attention"
    if inc["mode"] == "plan":
        return "planned"
    if inc["status"] in ("interrupted", "unknown") or any(s["status"] == "unfinished" for s in model["steps"]):
        return "unfinished"
    if con["dead"] and (tgt["restored"] or not tgt["ran"]):
        return "resolved"
    return "in progress" if inc["status"] == "running" else "completed"
