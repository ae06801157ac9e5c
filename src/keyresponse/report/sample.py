"""A believable journal of a finished `leaked-key` incident, for template authors and tests.

The records follow the shapes the actions journal (see each action's outputs); the
secret of the new key appears only as `{"$secret": mask}`, as the journal holds it.
`records(...)` takes the key's provider-side name so tests can feed hostile names.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

UTC = dt.UTC


def records(
    *,
    start: dt.datetime | None = None,
    key_name: str = "chatbot-prod",
    inventory_name: str = "chatbot-prod",
    playbook: str = "leaked-key",
    new_mask: str = "sk-svcacct-…9f3b",
    hours: int = 14 * 24,
    fail_target: bool = False,
    finished: bool = True,
) -> list[dict[str, Any]]:
    start = start or dt.datetime(2024, 5, 20, 9, 0, tzinfo=UTC)
    clock = [start]

    def t(seconds: float = 0.0) -> str:
        clock[0] += dt.timedelta(seconds=seconds)
        return clock[0].isoformat(timespec="milliseconds").replace("+00:00", "Z")

    leak = start - dt.timedelta(hours=6)
    out: list[dict[str, Any]] = [{
        "t": t(), "event": "incident.opened", "playbook": playbook, "mode": "apply", "key": inventory_name,
        "inputs": {"key": inventory_name, "severity": "critical", "leaked_at": leak.isoformat().replace("+00:00", "Z"),
                   "leaked": {"$secret": "sk-proj-…a1b2"}},
        "user": "oncall", "host": "laptop-7", "version": "0.1.0",
    }]

    def step(sid: str, uses: str, took: float, outputs: dict[str, Any], status: str = "applied",
             error: str | None = None, summary: str = "") -> None:
        out.append({"t": t(0.2), "event": "step.started", "step": sid, "uses": uses, "attempt": 1, "mode": "apply"})
        out.append({"t": t(took), "event": "step.finished", "step": sid, "uses": uses, "status": status,
                    "duration": took, "summary": summary or f"{uses} for {inventory_name}", "outputs": outputs,
                    "error": error, "hint": None})

    key = {"key_id": "key_leak01", "project_id": "proj_chatbot", "name": key_name, "owner_type": "service_account",
           "owner_id": "svc_chatbot", "redacted_value": "sk-proj-…a1b2", "created_at": "2024-01-05T10:00:00Z",
           "last_used_at": (start - dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z")}
    step("open", "notify.slack", 0.4, {"ok": True, "channel": "C0INCIDENT", "ts": "1716195600.000100", "event": "opened"})
    out.append({"t": t(0.01), "event": "step.note", "step": "open", "note": "slack.thread",
                "channel": "C0INCIDENT", "ts": "1716195600.000100"})
    step("revoke", "key.revoke", 1.3, {**key, "method": "delete_service_account",
                                       "revoked_at": t(0), "already_gone": False})
    step("dead", "key.probe", 0.8, {"result": "dead", "method": "GET /models", "expect": "dead"})
    step("issue", "key.issue", 1.1, {"secret": {"$secret": new_mask}, "key_id": "key_new02",
                                     "service_account_id": "svc_new02", "name": "keyresponse-chatbot-prod",
                                     "redacted_value": new_mask, "project_id": "proj_chatbot"})
    rows = [
        {"target": "envfile deploy/.env:OPENAI_API_KEY", "kind": "envfile", "status": "applied", "verified": True,
         "restarted": False, "error": None, "note": None},
        {"target": "GitHub secret acme/chatbot:OPENAI_API_KEY", "kind": "github", "status": "applied",
         "verified": True, "restarted": True, "error": None, "note": "workflow deploy.yml dispatched"},
        {"target": "GitLab variable acme/worker:OPENAI_API_KEY", "kind": "gitlab",
         "status": "failed" if fail_target else "applied", "verified": not fail_target, "restarted": False,
         "error": "403 Forbidden from PUT /projects/7/variables/OPENAI_API_KEY" if fail_target else None,
         "note": None},
    ]
    step("deploy", "targets.deploy", 4.5, {"targets": rows, "failed": int(fail_target), "applied": 3 - int(fail_target)},
         status="failed" if fail_target else "applied",
         error="1 of 3 targets failed" if fail_target else None)
    if fail_target:
        out.append({"t": t(0.01), "event": "incident.finished", "status": "failed"})
        return out
    step("live", "key.probe", 0.7, {"result": "live", "method": "GET /models", "expect": "live"})
    step("audit", "key.audit", 2.2, _audit(start, leak, hours))
    step("exposure", "exposure.scan", 1.0, {"findings": [
        {"source": "github", "location": "acme/chatbot:src/config.py", "url": "https://github.com/acme/chatbot/blob/4f2c/src/config.py",
         "commit": "4f2c9e1", "first_seen": leak.isoformat().replace("+00:00", "Z")}]})
    out.append({"t": t(0.1), "event": "step.warning", "step": "exposure", "message": "1 copy of the key found in a public repo"})
    if finished:
        out.append({"t": t(0.1), "event": "incident.finished", "status": "succeeded"})
    return out


def _audit(start: dt.datetime, leak: dt.datetime, hours: int) -> dict[str, Any]:
    first = (start - dt.timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    hourly, anomalies = [], []
    for i in range(hours):
        hour = first + dt.timedelta(hours=i)
        attack = hour >= leak.replace(minute=0)
        req = 1800 + 37 * (i % 5) if attack else 40 + (i * 7) % 25
        tokens = req * (900 if attack else 350)
        iso = hour.isoformat().replace("+00:00", "Z")
        hourly.append({"hour": iso, "requests": req, "input_tokens": tokens * 3 // 4, "output_tokens": tokens // 4,
                       "anomalous": attack})
        if attack:
            anomalies.append({"hour": iso, "requests": req, "tokens": tokens, "score": 41.5})
    return {
        "window_start": hourly[0]["hour"], "window_end": start.isoformat().replace("+00:00", "Z"),
        "leak_time": leak.isoformat().replace("+00:00", "Z"), "hourly": hourly, "anomalies": anomalies,
        "first_anomalous_hour": anomalies[0]["hour"] if anomalies else None,
        "new_models": ["o1-pro"],
        "models": [
            {"model": "gpt-4o-mini", "requests": 12040, "input_tokens": 3_100_000, "output_tokens": 1_000_000,
             "cost_usd": 1.07, "in_baseline": True},
            {"model": "o1-pro", "requests": 10930, "input_tokens": 7_400_000, "output_tokens": 2_500_000,
             "cost_usd": 2611.5, "in_baseline": False},
        ],
        "totals": {"before": {"requests": 12040, "tokens": 4_100_000, "cost_usd": 1.07},
                   "after": {"requests": 10930, "tokens": 9_900_000, "cost_usd": 2611.5}},
        "estimated_cost_usd": 2611.5, "costs_api_usd": 2598.0,
        "events": [{"type": "api_key.created", "effective_at": "2024-01-05T10:00:00Z",
                    "actor": {"type": "session", "session": {"user": {"email": "dev@acme.test"}}}}],
        "last_used_at": (start - dt.timedelta(minutes=3)).isoformat().replace("+00:00", "Z"),
    }


def write(journal_path: Path, recs: list[dict[str, Any]]) -> None:
    """Write records as the journal does (one JSON object a line), for a journal built by hand."""
    with open(journal_path, "a", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
