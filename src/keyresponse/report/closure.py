"""The report's closure section: whether the old key's traffic has stopped, from the
usage data (`key.closure` / `keyresponse verify`, the latest verdict wins) and, in a
rotation, what the drain saw before the revoke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyresponse.report.model import Steps


def section(records: list[dict[str, Any]], steps: Steps) -> dict[str, Any]:
    verdicts = [r for r in records if r.get("event") == "closure" and isinstance(r, dict)]
    verdict = verdicts[-1] if verdicts else None
    drain_step = steps.last("key.drain")
    drain = dict(drain_step["outputs"]) if drain_step and drain_step["outputs"] else None
    if drain is not None and drain_step is not None:
        drain["status"] = drain_step["status"]
    return {
        "ran": verdict is not None or drain is not None,
        "status": verdict.get("status") if verdict else None,
        "checked_at": verdict.get("checked_at") if verdict else None,
        "via": verdict.get("via") if verdict else None,
        "checks": len(verdicts),
        "reasons": list(verdict.get("reasons") or []) if verdict else [],
        "leaked": _dict(verdict, "leaked"),
        "replacement": _dict(verdict, "replacement"),
        "last_used_at": verdict.get("last_used_at") if verdict else None,
        "drain": drain,
    }


def _dict(verdict: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    value = (verdict or {}).get(name)
    return value if isinstance(value, dict) else None
