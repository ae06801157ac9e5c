"""Every journal event as one timeline row: UTC time, time since the start, what happened."""

from __future__ import annotations

from typing import Any

from keyresponse.report import times

_QUIET_NOTE_FIELDS = {"t", "event", "step", "note"}


def timeline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = next((r.get("t") for r in records if r.get("event") == "incident.opened"), None)
    start = start or (records[0].get("t") if records else None)
    rows = []
    for r in records:
        seconds = times.seconds_between(start, r.get("t"))
        rows.append({
            "t": times.iso(r.get("t")),
            "elapsed": seconds,
            "elapsed_text": "+" + times.duration(seconds) if seconds is not None else "—",
            "event": str(r.get("event")),
            "step": r.get("step"),
            "duration": r.get("duration") if r.get("event") == "step.finished" else None,
            "duration_text": times.duration(r.get("duration")) if r.get("event") == "step.finished" else "",
            "status": r.get("status"),
            "text": describe(r),
        })
    return rows


def describe(r: dict[str, Any]) -> str:
    """One line for a journal record. Values are data: templates escape them, never evaluate."""
    event = r.get("event")
    if event == "incident.opened":
        return (f"opened by {r.get('user') or 'unknown'}@{r.get('host') or 'unknown'}: "
                f"playbook {r.get('playbook')}, key {r.get('key')}, mode {r.get('mode')}")
    if event == "incident.resumed":
        rerun = ", ".join(map(str, r.get("rerun") or [])) or "nothing"
        return f"resumed by {r.get('user') or 'unknown'}@{r.get('host') or 'unknown'}; running again: {rerun}"
    if event == "incident.finished":
        return f"finished: {r.get('status')}"
    if event == "step.started":
        attempt = r.get("attempt") or 1
        return f"started {r.get('uses')}" + (f" (attempt {attempt})" if attempt != 1 else "")
    if event == "step.planned":
        plan: dict[str, Any] = r["plan"] if isinstance(r.get("plan"), dict) else {}
        failed = [c for c in r.get("checks") or [] if isinstance(c, dict) and not c.get("ok")]
        text = f"planned: {plan.get('summary', '')}"
        return text + (f"; {len(failed)} check(s) failed" if failed else "")
    if event == "step.finished":
        text = f"{r.get('status')}"
        if r.get("summary"):
            text += f": {r.get('summary')}"
        if r.get("error"):
            text += f" — {r.get('error')}"
        return text
    if event == "step.warning":
        return f"warning: {r.get('message')}"
    if event == "step.retrying":
        return f"attempt {r.get('attempt')} failed, retrying: {r.get('error')}"
    if event == "step.note":
        extra = ", ".join(f"{k}={v}" for k, v in r.items() if k not in _QUIET_NOTE_FIELDS and _scalar(v))
        return f"note {r.get('note')}" + (f": {extra}" if extra else "")
    return str(event)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
