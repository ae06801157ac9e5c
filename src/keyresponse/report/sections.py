"""The report's sections, each from the folded journal (`model.Steps`).

Each reads only its own steps' outputs and tolerates any of them missing, failed
or half-shaped: the outputs come from other actions and from older versions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from keyresponse.report import times

if TYPE_CHECKING:
    from keyresponse.report.model import Steps

TARGET_OK = ("applied", "ok", "written", "skipped", "unchanged")


def key(steps: Steps, opened: dict[str, Any]) -> dict[str, Any]:
    fields = ("key_id", "project_id", "name", "owner_type", "owner_id", "redacted_value",
              "created_at", "last_used_at")
    key: dict[str, Any] = {f: None for f in fields}
    for uses in ("key.find", "key.revoke"):  # revoke's view is later, so it wins
        for step in steps.of(uses):
            key.update({f: step["outputs"][f] for f in fields if step["outputs"].get(f) is not None})
    key["inventory_name"] = opened.get("key")
    key["known"] = any(key[f] for f in fields)
    return key


def probe_view(step: dict[str, Any]) -> dict[str, Any]:
    """A probe's answer: its outputs, or for a probe that failed (wrong answer, so no
    outputs) the `key.probe.result` note it journaled before failing."""
    outputs: dict[str, Any] = step["outputs"]
    if outputs.get("result"):
        return outputs
    notes: list[dict[str, Any]] = [n for n in step["notes"] if n.get("note") == "key.probe.result"]
    return notes[-1] if notes else {}


def _probes(steps: Steps, wanted: tuple[str, ...]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for p in steps.of("key.probe"):
        view = probe_view(p)
        expect = view.get("expect")
        if expect in wanted or (expect is None and view.get("result") in wanted):
            out.append((p, view))
    return out


def containment(steps: Steps) -> dict[str, Any]:
    revoke = steps.last("key.revoke")
    rev = revoke["outputs"] if revoke else {}
    probes = _probes(steps, ("dead",))
    probe, view = probes[-1] if probes else (None, {})
    dead = view.get("result") == "dead" and probe is not None and probe["status"] == "applied"
    # the step's own journal time, to the millisecond; the probe's checked_at may be whole seconds
    contained_at = (probe["finished_at"] or view.get("checked_at")) if dead and probe else None
    still_live = any(n.get("still_live") for n in (revoke or {}).get("notes", []) if n.get("note") == "key.revoke.failed")
    return {
        "revoke_status": revoke["status"] if revoke else None,
        "revoked_at": times.iso(rev.get("revoked_at")) or (times.iso(revoke["finished_at"])
                                                             if revoke and revoke["status"] == "applied" else None),
        "method": rev.get("method"), "already_gone": rev.get("already_gone"),
        "revoke_error": revoke["error"] if revoke else None, "still_live": still_live and not dead,
        "probe_status": probe["status"] if probe else None, "probe_step": probe["id"] if probe else None,
        "probe_result": view.get("result"), "probe_method": view.get("method"),
        "probe_detail": view.get("detail"), "probe_error": probe["error"] if probe else None,
        "dead": dead, "contained_at": times.iso(contained_at),
        # an already-gone key: who or what removed it first, as the audit log says
        "revoked_by": rev.get("revoked_by"), "revoked_first_at": times.iso(rev.get("revoked_first_at")),
        "deleted_service_account": rev.get("deleted_service_account"),
        "also_revoked": [str(k) for k in _list(rev.get("also_revoked"))],
    }


def replacement(steps: Steps) -> dict[str, Any]:
    issue = steps.last("key.issue")
    out = issue["outputs"] if issue else {}
    probes = _probes(steps, ("live", "restricted"))
    probe, view = probes[-1] if probes else (None, {})
    # replacements an interrupted run deployed, kept live by key.issue until key.retire revokes them
    retired = {str(i) for s in steps.of("key.retire") for i in _list(s["outputs"].get("revoked"))}
    kept_live = [str(k.get("service_account_id") or k.get("key_id")) for k in _list(out.get("earlier"))
                 if isinstance(k, dict) and str(k.get("service_account_id") or k.get("key_id")) not in retired]
    # Only ids and the mask: the journal holds no value, and the report must not pretend to.
    skipped = out.get("issued") is False  # nothing minted: the key had nowhere to go
    return {
        "status": issue["status"] if issue and not skipped else None, "error": issue["error"] if issue else None,
        "not_issued": out.get("reason") if skipped else None,
        **{f: out.get(f) for f in ("key_id", "name", "redacted_value", "service_account_id", "project_id")},
        "probe_status": probe["status"] if probe else None, "probe_step": probe["id"] if probe else None,
        "probe_result": view.get("result"), "kept_live": kept_live,
    }


def targets(steps: Steps) -> dict[str, Any]:
    deploys = steps.of("targets.deploy")
    rows: list[dict[str, Any]] = []
    for step in deploys:
        for t in _list(step["outputs"].get("targets")):
            if isinstance(t, dict):
                rows.append({f: t.get(f) for f in ("target", "kind", "status", "verified", "restarted", "error", "note",
                                                   "run_url")})
    restarted = {t for s in steps.of("targets.restart") if s["status"] == "applied"
                 for t in _list(s["outputs"].get("restarted")) if isinstance(t, str)}
    runs: dict[Any, Any] = {}
    for s in steps.of("targets.restart"):
        if s["status"] == "applied" and isinstance(s["outputs"].get("runs"), dict):
            runs.update(s["outputs"]["runs"])
    for r in rows:
        # a restart that started something names it (a dispatched workflow run's page)
        r["run_url"] = _run_url(runs.get(r["target"]) or r["run_url"])
        if r["target"] in restarted:  # a separate targets.restart step restarted these
            r["restarted"] = True
    failed = [r for r in rows if r["status"] not in TARGET_OK]
    done = bool(deploys) and all(s["status"] == "applied" for s in deploys) and not failed
    restored_at = max((s["finished_at"] for s in deploys if s["finished_at"]), default=None) if done else None
    return {
        "ran": bool(deploys), "rows": rows, "failed": len(failed), "ok": len(rows) - len(failed),
        "status": deploys[-1]["status"] if deploys else None,
        "errors": [s["error"] for s in deploys if s["error"]],
        "restored": done, "restored_at": times.iso(restored_at),
    }


# a link the report may show: http(s), and nothing that could end a Markdown link or an attribute
_LINK = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~%/+=-]*)?")


def _run_url(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) < 500 and _LINK.fullmatch(value) else None


_AUDIT_SCALARS = ("window_start", "window_end", "leak_time", "first_anomalous_hour", "estimated_cost_usd",
                  "costs_api_usd", "last_used_at", "window_note")
_AUDIT_LISTS = ("hourly", "anomalies", "models", "events", "new_models")


def audit(steps: Steps) -> dict[str, Any]:
    audit = steps.last("key.audit")
    if audit is None:
        return {"ran": False, "status": None, "error": None, "anomaly_runs": []}
    out: dict[str, Any] = {f: None for f in _AUDIT_SCALARS}
    out.update({f: [] for f in _AUDIT_LISTS})
    out["totals"] = {}
    for k, v in audit["outputs"].items():
        if k in _AUDIT_LISTS:
            kind = str if k == "new_models" else dict
            out[k] = [x for x in _list(v) if isinstance(x, kind)]
            if k == "events":
                out[k] = [{**e, "actor": _actor(e.get("actor"))} for e in out[k] if isinstance(e, dict)]
        elif k == "totals":
            out[k] = {p: t for p, t in v.items() if isinstance(t, dict)} if isinstance(v, dict) else {}
        else:
            out[k] = v
    out.update(ran=True, status=audit["status"], error=audit["error"], anomaly_runs=anomaly_runs(out["anomalies"]))
    return out


def anomaly_runs(anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive anomalous hours as one row each: a two-day attack is one line, not 48."""
    runs: list[dict[str, Any]] = []
    hours = []
    for a in anomalies:
        when = times.parse(a.get("hour"))
        if when is not None:
            hours.append((when, a))
    for when, a in sorted(hours, key=lambda pair: pair[0]):
        last = runs[-1] if runs else None
        if last is not None and (when - last["_end"]).total_seconds() <= 3600:
            last["_end"] = when
        else:
            last = {"_start": when, "_end": when, "hours": 0, "requests": 0.0, "tokens": 0.0, "peak_score": None}
            runs.append(last)
        last["hours"] += 1
        last["requests"] += _number(a.get("requests"))
        last["tokens"] += _number(a.get("tokens"))
        score = a.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            last["peak_score"] = score if last["peak_score"] is None else max(last["peak_score"], score)
    for r in runs:
        r["start"], r["end"] = times.iso(r.pop("_start")), times.iso(r.pop("_end"))
    return runs


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _actor(actor: Any) -> Any:
    """Audit-log actors are nested objects (session user, api key); the report wants one name."""
    if not isinstance(actor, dict):
        return actor
    for path in (("session", "user", "email"), ("session", "user", "id"), ("api_key", "user", "email"),
                 ("api_key", "service_account", "id"), ("api_key", "id"), ("email",), ("id",)):
        node: Any = actor
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            return node
    return actor.get("type") or "unknown"


def exposure(steps: Steps) -> dict[str, Any]:
    scan = steps.last("exposure.scan")
    if scan is None:
        return {"ran": False, "findings": []}
    findings = [f for f in _list(scan["outputs"].get("findings")) if isinstance(f, dict)]
    return {"ran": True, "status": scan["status"], "error": scan["error"], "findings": findings,
            "repos": _list(scan["outputs"].get("repos")), "searched_for": _list(scan["outputs"].get("searched_for"))}


def how_it_leaked(exposure: dict[str, Any], audit: dict[str, Any]) -> dict[str, Any]:
    """The "How it leaked" section: the first exposure (commit, file, public or private
    repo, or the alert's location), how long before the first abuse, its class, and the
    fixes for it with what the scan checked. Recomputed from the findings, so a report of
    an older journal reads the same."""
    from keyresponse.exposure import cause

    if not exposure.get("ran"):
        return {"ran": False, "known": False, "prevention": []}
    findings = exposure.get("findings") or []
    repos = [r for r in _list(exposure.get("repos")) if isinstance(r, dict)]
    first_abuse = times.iso(audit.get("first_anomalous_hour")) if audit.get("ran") else None
    root = cause.root_cause(findings, repos, first_abuse)
    first = root.get("first") or {}
    window = root.get("window_seconds")
    return {
        "ran": True, "known": root["known"], "class": root["class"], "label": root["label"],
        "commit": first.get("commit"), "short": (first.get("commit") or "")[:10] or None,
        "path": first.get("path"), "line": first.get("line"), "repo": first.get("repo"),
        "location": first.get("location"), "url": first.get("url"), "source": first.get("source"),
        "author": first.get("author"), "committer": first.get("committer"),
        "exposed_at": times.iso(root.get("exposed_at")), "first_abuse": first_abuse,
        "window_seconds": window, "window_text": times.duration(window) if window is not None and window >= 0
        else None, "abuse_before_exposure": window is not None and window < 0,
        "public": root.get("public"), "refs": first.get("refs") or [],
        "removed_in": first.get("removed_in"), "in_head": first.get("in_head"),
        "copies": len(findings), "searched_for": exposure.get("searched_for") or [],
        "repos": repos, "prevention": cause.prevention(root, findings, repos),
    }


def notifications(steps: Steps) -> list[dict[str, Any]]:
    rows = []
    for s in steps.of("notify.slack"):
        out = s["outputs"]
        ok = s["status"] == "applied" and (out.get("ok") is not False or bool(out.get("skipped")))
        # the opening post is made in the background: its failure is a note after the step ended
        late = next((n for n in s["notes"] if n.get("note") == "slack.root.failed"), None)
        if late is not None:
            ok = False
        rows.append({"step": s["id"], "event": out.get("event"), "ok": ok,
                     "error": out.get("error") or (late or {}).get("error") or s["error"], "status": s["status"]})
    return rows


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
